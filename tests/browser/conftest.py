"""Shared browser fixtures: Debian's Chromium driven by Playwright. Every page a test opens
is watched for Content-Security-Policy violations (the browser's console report and the
`securitypolicyviolation` event), and the test fails on any."""
import pytest
from django.db import connections

from tests.browser.helpers import CHROMIUM

# Reports each violation on the console, with what was blocked and where, so the console
# listener below sees it even where Chromium's own message is worded differently.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class CspWatchedBrowser:
    """The Playwright browser, with every page it opens watched for CSP violations."""

    def __init__(self, browser):
        self._browser = browser
        self.violations = []

    def __getattr__(self, name):
        return getattr(self._browser, name)

    def _watch_page(self, page):
        def on_console(message):
            text = message.text
            if "Content Security Policy" in text or text.startswith("CSP violation"):
                self.violations.append(f"{page.url}: {text}")

        page.on("console", on_console)

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("page", self._watch_page)
        return context

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        page.add_init_script(REPORT_VIOLATIONS)
        self._watch_page(page)
        return page


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        watched = CspWatchedBrowser(browser)
        yield watched
        # ORM calls made while Playwright runs get their own database connection (Django keeps
        # connections in context variables, and Playwright switches contexts); close it here,
        # in that context, or PostgreSQL refuses to drop the test database at the end.
        connections.close_all()
        browser.close()
    assert not watched.violations, "Content-Security-Policy violations:\n" + "\n".join(watched.violations)
