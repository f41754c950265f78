"""The Content-Security-Policy in a real browser: the pages use nothing it forbids (the
`browser` fixture fails a test on any violation), and the watcher does catch one."""
import os

from tests.browser.helpers import BROWSER_MARKS, log_in

pytestmark = BROWSER_MARKS
# The ORM runs in the test's thread while Playwright's event loop is running there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

INLINE = '<!doctype html><html><body><div style="width: 10px">x</div><button onclick="1">b</button></body></html>'


def test_the_watcher_reports_an_inline_style_and_handler(browser):
    page = browser.new_page()
    page.route("http://csp.test/", lambda route: route.fulfill(
        body=INLINE, content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'"}))
    page.goto("http://csp.test/")
    page.wait_for_timeout(200)
    assert any("style-src" in v for v in browser.violations), browser.violations
    browser.violations.clear()  # caught: this test's page is meant to violate


def test_owner_pages_work_without_a_violation(browser, live_server, project, alice, bob, make_items):
    make_items(6)
    page = log_in(browser, live_server, "alice", "/projects/")
    # bars get their width from data-width through static/js/page.js (the untouched share: all)
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    assert page.locator(".stacked-bar .segment-untouched").evaluate("e => e.style.width") == "100%"
    for path in ("/projects/new/", f"/projects/{project.pk}/label/",
                 f"/projects/{project.pk}/dashboard/", f"/projects/{project.pk}/"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
    # the label CSV form clears itself after a successful htmx post (data-reset-on-success)
    page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    form = page.locator(f"form[hx-post='/projects/{project.pk}/labels/import/']")
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "labels.csv", "mimeType": "text/csv", "buffer": b"file,class\nnope.png,cat\n"}])
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#label-import-result")
    page.wait_for_timeout(300)
    assert form.locator("input[type=file]").evaluate("e => e.files.length") == 0


def test_the_api_docs_render_under_the_policy(browser, live_server, alice):
    page = log_in(browser, live_server, "alice", "/projects/")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20000)
