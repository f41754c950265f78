"""The labeling page's image viewer and the project's instructions in a real browser: wheel
zoom about the pointer, drag to pan, + and -, original size (with the original file loaded
over a smaller display copy), brightness and contrast; a class key still answers and the
next image still comes up at once; the instructions open on a first visit, close, open on
I, and open again after the owner edits them on the settings page. Writes screenshots to
test-artifacts/."""
import os
import re

from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.importing import images
from annotator.models import Annotation
from annotator.projects.instructions import update_instructions
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in
from tests.browser.test_labeling import TIMING_PROBE, picture, press_and_time, shown_item, wait_until_settled

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = BROWSER_MARKS


def view(page):
    return page.evaluate("() => window.labeler.view()")


def image_style(page):
    return page.evaluate("""() => {
        const style = getComputedStyle(document.getElementById("label-image"));
        return {transform: style.transform, filter: style.filter};
    }""")


def matrix(transform):
    """(scale, x, y) of a computed `matrix(a, b, c, d, e, f)`."""
    a, _b, _c, _d, e, f = (float(v) for v in re.findall(r"-?[\d.e+-]+", transform))
    return a, e, f


def stage_box(page):
    return page.evaluate("""() => {
        const r = document.getElementById("stage").getBoundingClientRect();
        return {x: r.left, y: r.top, w: r.width, h: r.height};
    }""")


def test_viewer_and_instructions(browser, live_server, project, alice, bob, settings):
    settings.DISPLAY_MAX_SIDE = 320  # the 640 x 480 images get a 320 x 240 display copy
    uploads = [SimpleUploadedFile(f"picture-{n:02}.png", picture(n), "image/png") for n in range(6)]
    assert images.import_uploads(project, uploads, user=alice).imported == 6
    example = project.items.order_by("pk").first()
    two = project.classes.get(name="two")
    update_instructions(
        project,
        markdown="## Digits\n\nLabel the digit **written in the middle**, not the colours.\n\n- Zoom in with the wheel\n- Skip (S) a blurred one",
        classes=[{"id": two.pk, "description": "A flat base; the top is *curved*.", "examples": [example.pk]}],
    )
    ARTIFACTS.mkdir(exist_ok=True)

    # 1. The instructions open on the first visit, with the example through the media view.
    page = log_in(browser, live_server, "bob", f"/projects/{project.pk}/label/")
    page.evaluate(TIMING_PROBE)
    wait_until_settled(page)
    assert page.is_visible("#instructions")
    assert "written in the middle" in page.inner_text("#instructions")
    page.wait_for_function("() => document.querySelector('.example-thumbs img').naturalWidth > 0")
    page.screenshot(path=str(ARTIFACTS / "labeling-instructions.png"))
    first = shown_item(page)
    page.keyboard.press("1")  # class keys wait while the instructions are open
    assert shown_item(page) == first and page.evaluate("() => window.labeler.pending()") == 0
    page.click("#instructions-close")
    assert not page.is_visible("#instructions")
    page.keyboard.press("i")
    assert page.is_visible("#instructions")
    page.keyboard.press("Escape")
    assert not page.is_visible("#instructions")
    page.click("#instructions-button")
    assert page.is_visible("#instructions")
    page.keyboard.press("i")
    assert not page.is_visible("#instructions")

    # 2. Wheel zoom about the pointer: the image point under the pointer stays put.
    assert image_style(page) == {"transform": "none", "filter": "none"}
    box = stage_box(page)
    px, py = 180.0, -90.0  # from the stage's centre
    page.mouse.move(box["x"] + box["w"] / 2 + px, box["y"] + box["h"] / 2 + py)
    page.mouse.wheel(0, -400)
    page.wait_for_function("() => window.labeler.view().scale > 1")
    zoomed = view(page)
    scale, x, y = matrix(image_style(page)["transform"])
    assert abs(scale - zoomed["scale"]) < 1e-3 and scale > 1.5
    assert abs(x - px * (1 - scale)) < 1 and abs(y - py * (1 - scale)) < 1

    # 3. Drag to pan; + and - zoom about the centre.
    page.mouse.down()
    page.mouse.move(box["x"] + box["w"] / 2 + px + 60, box["y"] + box["h"] / 2 + py + 25, steps=4)
    page.mouse.up()
    panned = view(page)
    assert abs(panned["x"] - zoomed["x"] - 60) < 1 and abs(panned["y"] - zoomed["y"] - 25) < 1
    page.keyboard.press("+")
    assert abs(view(page)["scale"] - panned["scale"] * 1.25) < 1e-6
    page.keyboard.press("-")
    assert abs(view(page)["scale"] - panned["scale"]) < 1e-6

    # 4. O: original size, one original pixel on one device pixel; the original file is loaded
    # over the 320-pixel display copy. O again: fit.
    page.keyboard.press("o")
    state = view(page)
    ratio = page.evaluate("() => window.devicePixelRatio")
    fit = min(box["w"] / 640, box["h"] / 480)
    assert state["original"] and abs(state["scale"] * fit * ratio - 1) < 1e-3  # clientWidth is whole pixels
    assert page.get_attribute("#zoom-original", "aria-pressed") == "true"
    assert page.inner_text("#zoom-level") == "100%"
    page.wait_for_function("() => document.getElementById('label-image').src.endsWith('?original=1')")
    page.wait_for_function("() => document.getElementById('label-image').naturalWidth === 640")
    page.screenshot(path=str(ARTIFACTS / "labeling-original-size.png"))
    page.keyboard.press("o")
    assert image_style(page)["transform"] == "none"

    # 5. Brightness and contrast: keys and slider change the filter only.
    page.keyboard.press("]")
    page.keyboard.press("]")
    page.keyboard.press("}")
    assert image_style(page)["filter"] == "brightness(1.2) contrast(1.1)"
    page.evaluate("""() => {
        const slider = document.getElementById("view-contrast");
        slider.value = "150";
        slider.dispatchEvent(new Event("input", {bubbles: true}));
        slider.dispatchEvent(new Event("change", {bubbles: true}));
    }""")
    assert image_style(page)["filter"] == "brightness(1.2) contrast(1.5)"
    page.mouse.move(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    page.mouse.wheel(0, -250)
    page.wait_for_function("() => window.labeler.view().scale > 1")
    page.screenshot(path=str(ARTIFACTS / "labeling-viewer.png"))

    # 6. A class key still answers, at once: the next image comes up at fit, filters kept.
    item, ms, _frame = press_and_time(page, "2")
    assert ms < 100, f"the next image took {ms:.1f} ms with the viewer on"
    print(f"\nkey press -> next image with a zoomed, filtered view: {ms:.1f} ms")
    assert image_style(page) == {"transform": "none", "filter": "brightness(1.2) contrast(1.5)"}
    wait_until_settled(page)
    assert Annotation.objects.get(annotator=bob, item_id=item).label.name == "one"
    page.keyboard.press("Escape")  # resets the view
    assert image_style(page) == {"transform": "none", "filter": "none"}

    # 7. Reloading does not open them again; the owner's edit does.
    page.reload()
    wait_until_settled(page)
    assert not page.is_visible("#instructions")
    owner = log_in(browser, live_server, "alice", f"/projects/{project.pk}/settings/")
    owner.fill("#id_markdown", "## Digits\n\nNew rule: a crossed **7** is a seven.")
    owner.fill(f"#id_examples_{two.pk}", f"{example.pk}, 999999")
    owner.click("#instructions-save")
    owner.wait_for_selector("#instructions .form-errors")
    assert "is not an image of this project" in owner.inner_text("#instructions .form-errors")
    assert owner.input_value("#id_markdown").startswith("## Digits\n\nNew rule")  # nothing lost
    owner.fill(f"#id_examples_{two.pk}", str(example.pk))
    owner.click("#instructions-save")
    owner.wait_for_selector("#instructions .message-success")
    owner.screenshot(path=str(ARTIFACTS / "settings-instructions.png"), full_page=True)
    page.reload()
    wait_until_settled(page)
    assert page.is_visible("#instructions")
    assert "crossed" in page.inner_text("#instructions")


def test_a_class_that_holds_o_keeps_it(browser, live_server, project, bob, make_items):
    """An older project whose class got o before o was the viewer's: the class wins; the
    original-size toggle stays on its button."""
    make_items(4)
    project.classes.filter(name="one").update(hotkey="o")
    page = log_in(browser, live_server, "bob", f"/projects/{project.pk}/label/")
    page.evaluate(TIMING_PROBE)
    wait_until_settled(page)
    item, ms, _frame = press_and_time(page, "o")
    assert ms < 100
    wait_until_settled(page)
    assert Annotation.objects.get(annotator=bob, item_id=item).label.name == "one"
    assert not view(page)["original"]
    page.click("#zoom-original")
    assert view(page)["original"]
    assert page.get_attribute("#zoom-original", "aria-pressed") == "true"
    page.keyboard.press("-")  # the other viewer keys still work
    assert not view(page)["original"]
