"""Shared browser fixtures: Debian's Chromium driven by Playwright."""
import pytest
from django.db import connections

from tests.browser.helpers import CHROMIUM


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        # ORM calls made while Playwright runs get their own database connection (Django keeps
        # connections in context variables, and Playwright switches contexts); close it here,
        # in that context, or PostgreSQL refuses to drop the test database at the end.
        connections.close_all()
        browser.close()
