"""The settings page's Label Studio and guesses imports in a real browser (htmx posts, the
reports swapped in, no CSP violation), and an imported guess on the labeling page. Writes
test-artifacts/settings-imports.png and labeling-imported-guess.png."""
import json
import os

from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in

pytestmark = BROWSER_MARKS
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _post(page, project, path, name, mime, body, **fields):
    form = page.locator(f"form[hx-post='/projects/{project.pk}/{path}']")
    form.locator("input[type=file]").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": body}])
    for field, value in fields.items():
        form.locator(f"input[name={field}]").fill(value)
    form.locator("button[type=submit]").click()


def test_owner_imports_label_studio_tasks_and_guesses(browser, live_server, project, alice, bob, make_items):
    items = make_items(2)
    page = log_in(browser, live_server, "alice", f"/projects/{project.pk}/settings/")
    tasks = [{"data": {"image": "/data/upload/1/lion.png"},
              "annotations": [{"result": [{"type": "choices", "from_name": "choice", "to_name": "image",
                                           "value": {"choices": ["one"]}}]}]}]
    _post(page, project, "labels/import-labelstudio/", "tasks.json", "application/json", json.dumps(tasks).encode())
    result = page.locator("#labelstudio-import-result")
    result.get_by_text("Nothing was imported").wait_for()
    assert "lion.png" in result.inner_text()

    csv = "file,class,score\n" + "".join(f"{item.content_hash},two,0.4\n" for item in items)
    _post(page, project, "suggestions/import/", "guesses.csv", "text/csv", csv.encode(), source="CLIP zero-shot")
    page.locator("#suggestion-import-result").get_by_text("stored as").wait_for()
    assert "2 stored as “CLIP zero-shot”" in page.locator("#suggestion-import-result").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "settings-imports.png"), full_page=True)

    labeler = log_in(browser, live_server, "bob", f"/projects/{project.pk}/label/")
    labeler.locator("#guess-label").get_by_text("two").wait_for()
    assert labeler.locator("#guess-kind").inner_text() == "Guess from CLIP zero-shot"
    labeler.screenshot(path=str(ARTIFACTS / "labeling-imported-guess.png"))
