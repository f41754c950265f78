"""Browser test helpers shared by the test files (the fixture lives in conftest.py)."""
from pathlib import Path

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")


def log_in(browser, live_server, username, next_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{next_path}")
    return page
