"""The labeling page of a multi-label project in headless Chromium: the model's set shown
checked and accepted with A, class keys toggling classes (pressed look), Enter saving the set
or "none applies", skip and undo; the answer-to-next-image swap stays under 100 ms. Writes
screenshots and the timing to test-artifacts/."""
import json
import os
import statistics

from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.importing import images
from annotator.labeling.leasing import lease_next
from annotator.models import Annotation
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in
from tests.browser.test_labeling import TIMING_PROBE, picture, press_and_time, shown_item, wait_until_settled

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = BROWSER_MARKS


def checked(page):
    return page.evaluate("() => Array.from(document.querySelectorAll('.class-toggle input:checked')).map((b) => b.value)")


def test_sets_by_keyboard_with_the_models_set_undo_and_skip(browser, live_server, tags, alice, bob):
    uploads = [SimpleUploadedFile(f"scene-{n:02}.png", picture(n), "image/png") for n in range(10)]
    assert images.import_uploads(tags, uploads, user=alice).imported == 10
    first = lease_next(tags, bob)
    first.suggestion = {"label": "dog", "confidence": 0.93, "top": [{"label": "dog", "confidence": 0.93}],
                        "labels": ["cat", "dog"], "set_confidence": 0.81}
    first.save(update_fields=["suggestion"])

    page = log_in(browser, live_server, "bob", f"/projects/{tags.pk}/label/")
    page.evaluate(TIMING_PROBE)
    wait_until_settled(page)
    assert shown_item(page) == first.item_id
    assert checked(page) == ["cat", "dog"]
    assert page.inner_text("#guess").startswith("Model guess: cat, dog 81%")
    assert page.inner_text("#set-button-text") == "Save 2 classes"
    # The pressed look: a checked class is filled with the accent colour, an unchecked one is not.
    fills = page.evaluate("""() => Array.from(document.querySelectorAll('.class-toggle')).map(
        (l) => getComputedStyle(l).backgroundColor)""")
    assert fills[0] == fills[1] != fills[2]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labeling-sets.png"))

    expected, timings = {}, []
    # 1. Accept the model's set with A.
    item, ms, _frame = press_and_time(page, "a")
    expected[item] = ["cat", "dog"]
    timings.append(ms)
    wait_until_settled(page)
    # 2. Toggle car on (3), cat on and off (1, 1): Enter saves {car}.
    assert checked(page) == []
    assert page.inner_text("#set-button-text") == "None applies"
    for key in ("3", "1", "1"):
        page.keyboard.press(key)
    assert checked(page) == ["car"] and page.inner_text("#set-button-text") == "Save 1 class"
    item, ms, _frame = press_and_time(page, "Enter")
    expected[item] = ["car"]
    timings.append(ms)
    wait_until_settled(page)
    # 3. Nothing checked: Enter says none applies.
    item, ms, _frame = press_and_time(page, "Enter")
    expected[item] = []
    timings.append(ms)
    wait_until_settled(page)
    last = item
    # 4. Undo: the item comes back with its previous answer; a click toggles, Enter saves {dog}.
    page.keyboard.press("u")
    page.wait_for_function(f"() => document.getElementById('label-image').src.includes('/items/{last}/')")
    assert page.inner_text("#previous-answer strong") == "none applies"
    wait_until_settled(page)
    page.click(".class-toggle:has(input[value=dog])")
    assert checked(page) == ["dog"]
    item, ms, _frame = press_and_time(page, "Enter")  # the click gave the keys back to the page
    assert item == last
    expected[item] = ["dog"]
    timings.append(ms)
    wait_until_settled(page)
    # 5. Skip, with a class checked: it stays a skip.
    page.keyboard.press("2")
    skipped, ms, _frame = press_and_time(page, "s")
    timings.append(ms)
    wait_until_settled(page)

    live = {a.item_id: a for a in Annotation.objects.filter(annotator=bob, undone=False).prefetch_related("labels")}
    assert {i: sorted(c.name for c in a.labels.all()) for i, a in live.items() if not a.skipped} == expected
    assert [i for i, a in live.items() if a.skipped] == [skipped]
    assert Annotation.objects.get(annotator=bob, undone=True).item_id == last

    median = statistics.median(timings)
    (ARTIFACTS / "label-sets-timing.json").write_text(json.dumps({
        "what": "multi-label: key press (A, Enter, S) to the next image in #label-image, headless Chromium",
        "presses": len(timings), "median_ms": round(median, 2), "max_ms": round(max(timings), 2),
        "samples_ms": [round(t, 2) for t in timings]}, indent=2) + "\n")
    print(f"\nmulti-label key press -> next image: median {median:.1f} ms over {len(timings)} presses")
    assert median < 100
