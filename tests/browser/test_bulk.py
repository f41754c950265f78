"""Bulk labeling in a real browser (headless Chromium through Playwright): the grid of the
images the model puts in one class, moved through and toggled with the keyboard, 40 images
labeled in one confirm, then the batch undone. Writes screenshots to test-artifacts/."""
import io
import os

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw, ImageFont

from annotator.importing import images
from annotator.models import Annotation, Item
from tests.annotator.labeling.bulk_helpers import publish
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = BROWSER_MARKS
N = 44


def digit(n):
    """A small picture of the number n on a coloured field."""
    image = Image.new("RGB", (96, 96), f"hsl({(n * 47) % 360}, 50%, 40%)")
    draw = ImageDraw.Draw(image)
    draw.text((48, 48), str(n), fill="white", font=ImageFont.load_default(size=44), anchor="mm",
              stroke_width=3, stroke_fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def selected(page):
    return page.eval_on_selector_all(".bulk-tile[aria-selected=true]", "tiles => tiles.map(t => +t.dataset.item)")


def test_forty_images_in_one_confirm_then_undo(browser, live_server, project, alice, bob):
    uploads = [SimpleUploadedFile(f"digit-{n:02}.png", digit(n), "image/png") for n in range(N)]
    assert images.import_uploads(project, uploads, user=alice).imported == N
    items = list(Item.objects.filter(project=project).order_by("pool_index"))
    probs = np.zeros((N, 3), np.float32)
    probs[:, 2] = np.linspace(0.3, 0.99, N)  # the model is surest of the last images
    probs[:, 0] = 1 - probs[:, 2]
    publish(project, probs, [i.pool_index for i in items])
    surest = [i.pk for i in reversed(items)][:40]

    page = log_in(browser, live_server, "bob", f"/projects/{project.pk}/label/bulk/")
    page.goto(f"{live_server.url}/projects/{project.pk}/label/bulk/?label=two&size=40")
    page.wait_for_selector(".bulk-tile")
    tiles = page.eval_on_selector_all(".bulk-tile", "tiles => tiles.map(t => +t.dataset.item)")
    assert tiles == surest
    assert sorted(selected(page)) == sorted(surest)  # every image starts selected
    assert page.inner_text("#bulk-count") == "40"
    page.wait_for_function("() => [...document.querySelectorAll('.bulk-tile img')].every(i => i.complete && i.naturalWidth)")

    # The keyboard: move right and down, remove two images, put one back; `a` toggles all.
    page.focus(".bulk-tile")
    page.keyboard.press("l")
    page.keyboard.press("Space")
    columns = page.evaluate("() => { const t = [...document.querySelectorAll('.bulk-tile')];"
                            " return t.findIndex(x => x.offsetTop !== t[0].offsetTop); }")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    assert set(surest) - set(selected(page)) == {surest[1], surest[1 + columns]}
    assert page.inner_text("#bulk-count") == "38"
    page.keyboard.press("k")
    page.keyboard.press("Space")  # back on the second image: selected again
    page.keyboard.press("a")  # not all selected: select all
    assert len(selected(page)) == 40
    page.keyboard.press("a")  # all selected: none
    assert selected(page) == [] and page.is_disabled("#bulk-confirm")
    page.keyboard.press("a")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bulk-grid.png"), full_page=True)

    page.keyboard.press("Enter")  # one confirm
    page.wait_for_selector("#bulk-status[data-kind=ok]")
    assert page.inner_text("#bulk-status") == "Saved 40 answers as two."
    stored = Annotation.objects.filter(item__project=project, annotator__username="bob", undone=False)
    assert stored.count() == 40 and set(stored.values_list("item_id", flat=True)) == set(surest)
    assert set(stored.values_list("source", "label__name", "is_audit")) == {("bulk", "two", False)}
    assert len(set(stored.values_list("batch", flat=True))) == 1
    assert Item.objects.filter(project=project, done=True).count() == 40
    assert page.locator(".bulk-tile.is-saved[data-saved=two]").count() == 40
    assert page.is_visible("#bulk-more") and page.is_visible("#bulk-undo")
    page.screenshot(path=str(ARTIFACTS / "bulk-saved.png"), full_page=True)

    page.keyboard.press("u")  # the batch, undone as one
    page.wait_for_selector("#bulk-status:has-text('Undid the batch')")
    assert not Annotation.objects.filter(item__project=project, undone=False).exists()
    assert not Item.objects.filter(project=project, done=True).exists()
    assert page.locator(".bulk-tile.is-saved").count() == 0 and len(selected(page)) == 40
