"""The dashboard in a real browser (headless Chromium through Playwright): an owner opens it
from the overview and reads progress, classes and annotators; a screenshot goes to
test-artifacts/dashboard.png."""
import os
import random
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotator import services
from annotator.models import Item, Role
from tests.browser.helpers import CHROMIUM, log_in
from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM}"),
]






def labeled_project(project, alice, bob):
    """60 images, two labels wanted per image; alice, bob and erin answer some of them."""
    erin = get_user_model().objects.create_user("erin", password=PASSWORD)
    services.add_member(project, "erin", Role.ANNOTATOR)
    services.update_settings(project, annotations_per_item=2)
    items = Item.objects.bulk_create(
        Item(project=project, image=f"items/dummy-{i}.png", content_hash=f"{i:064x}", width=32, height=24, pool_index=i)
        for i in range(60)
    )
    rng = random.Random(7)
    plan = [(alice, items[:30], 0.05), (bob, items[10:45], 0.15), (erin, items[40:50], 0.3)]
    for user, chosen, skip_rate in plan:
        for item in chosen:
            classes = ["zero", "one", "two"]
            label = classes[item.pool_index % 3] if rng.random() < 0.85 else rng.choice(classes)
            if rng.random() < skip_rate:
                label = None
            try:
                services.submit_annotation(project, user, item_id=item.pk, label=label, skip=label is None,
                                           idempotency_key=f"{user.pk}-{item.pk}", duration_ms=rng.randint(600, 6000))
            except services.Conflict:
                pass


def test_owner_reads_the_dashboard(browser, live_server, project, alice, bob):
    labeled_project(project, alice, bob)
    from annotator import dashboard

    summary = dashboard.summary(project)
    progress = summary["progress"]

    page = log_in(browser, live_server, "alice", f"/projects/{project.pk}/")
    page.click("a:has-text('Dashboard')")
    page.wait_for_url(f"{live_server.url}/projects/{project.pk}/dashboard/")
    assert page.inner_text("h1") == "Dashboard"
    assert page.inner_text("#dash-items") == "60"
    assert page.inner_text("#dash-labeled") == str(progress["labeled"])
    assert page.inner_text("#dash-skipped") == str(progress["skipped"])
    assert page.inner_text("#dash-remaining") == str(progress["remaining"])
    assert progress["skipped"] > 0 and progress["multi_labeled"] > 0

    rows = page.locator("#dash-annotators tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).locator("th, td").all_inner_texts()
    top = summary["annotators"][0]
    assert first[:3] == [top["username"], str(top["labels"]), str(top["skips"])]
    overall = summary["agreement"]
    assert page.inner_text("#dash-agreement strong") == f"{round(100 * overall['agreement'])}%"
    class_counts = page.locator("#dash-classes tbody td.num:not(.muted)").all_inner_texts()
    assert class_counts == [str(n) for _name, n in summary["per_class"]]

    # The segments of the stacked bar add up to the whole width.
    widths = page.eval_on_selector_all(".stacked-bar .segment", "els => els.map(e => e.getBoundingClientRect().width)")
    bar = page.eval_on_selector(".stacked-bar", "e => e.getBoundingClientRect().width")
    assert sum(widths) == pytest.approx(bar, abs=1)
    assert page.get_attribute("#dash-export a >> nth=0", "href") == f"/projects/{project.pk}/export/?format=csv"
    assert page.is_visible("[data-trainer-status]")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_viewer_reads_an_empty_dashboard(browser, live_server, project, dave):
    page = log_in(browser, live_server, "dave", f"/projects/{project.pk}/dashboard/")
    assert page.inner_text("#dash-items") == "0"
    assert page.is_visible("text=Nobody has answered yet")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-empty.png"), full_page=True)
