"""The dashboard in a real browser (headless Chromium through Playwright): an owner opens it
from the overview and reads progress, classes and annotators; a screenshot goes to
test-artifacts/dashboard.png."""
import os
import random

import pytest
from django.contrib.auth import get_user_model

from annotator.access import Conflict
from annotator.dashboard.summary import dashboard_summary
from annotator.labeling.answers import submit_annotation
from annotator.models import Item, Role
from annotator.projects.changes import update_settings
from annotator.projects.members import add_member
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in
from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


pytestmark = BROWSER_MARKS






def labeled_project(project, alice, bob):
    """60 images, two labels wanted per image; alice, bob and erin answer some of them."""
    erin = get_user_model().objects.create_user("erin", password=PASSWORD)
    add_member(project, "erin", Role.ANNOTATOR)
    update_settings(project, annotations_per_item=2)
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
                submit_annotation(project, user, item_id=item.pk, label=label, skip=label is None,
                                           idempotency_key=f"{user.pk}-{item.pk}", duration_ms=rng.randint(600, 6000))
            except Conflict:
                pass


def test_owner_reads_the_dashboard(browser, live_server, project, alice, bob):
    labeled_project(project, alice, bob)

    summary = dashboard_summary(project)
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


def model_history(project, bob):
    """A labeled project as the loop leaves it: real images, model versions whose
    cross-validated accuracy rises, audit answers whose guesses get better with the labels,
    and a current version whose held-out arrays doubt two labels."""
    import numpy as np

    from annotator.modelloop.predictions import artifact_path
    from annotator.models import Annotation, ModelVersion, TrainerState
    from tests.annotator.modelloop.trainer_helpers import add_shape_items

    items, _kinds = add_shape_items(project, 45)
    names = project.class_names()
    truth = {item.pk: names[i % 3] for i, item in enumerate(items)}
    labeled = items[:36]
    for item in labeled:
        submit_annotation(project, bob, item_id=item.pk, label=truth[item.pk],
                                   idempotency_key=f"m-{item.pk}", duration_ms=1500)
    versions = [ModelVersion.objects.create(project=project, number=n, kind="fast", labels_used=6 * n, classes=names,
                                            metrics={"cv_accuracy": 0.4 + 0.09 * n}) for n in range(1, 7)]
    ModelVersion.objects.create(project=project, number=7, kind="slow", labels_used=30,
                                metrics={"accepted": True, "adopted": True})
    rng = random.Random(3)
    for k, item in enumerate(labeled):  # every label is an audit; the later models guess better
        version = versions[min(5, k // 6)]
        right = rng.random() < 0.35 + 0.1 * versions.index(version)
        guess = truth[item.pk] if right else rng.choice([n for n in names if n != truth[item.pk]])
        Annotation.objects.filter(item=item).update(is_audit=True, model_version=version,
                                                    suggestion={"label": guess, "confidence": 0.8, "top": []})
    folder = f"projects/{project.pk}/fast-browser"
    base = artifact_path(folder)
    base.mkdir(parents=True)
    labels = np.array([names.index(truth[item.pk]) for item in labeled])
    probs = np.full((len(labeled), 3), 0.05, np.float32)
    probs[np.arange(len(labeled)), labels] = 0.9
    probs[0] = [0.02, 0.95, 0.03] if labels[0] != 1 else [0.95, 0.02, 0.03]  # two confident disagreements
    probs[1] = [0.05, 0.05, 0.9] if labels[1] != 2 else [0.9, 0.05, 0.05]
    np.save(base / "heldout_items.npy", np.array([item.pk for item in labeled], np.int64))
    np.save(base / "heldout_labels.npy", labels)
    np.save(base / "heldout_probs.npy", probs)
    current = ModelVersion.objects.create(
        project=project, number=8, kind="fast", labels_used=36, classes=names, artifact_dir=folder,
        metrics={"cv_accuracy": 0.94, "unlabeled": 9, "uncertainty_hist": [0] * 12 + [1, 2, 3, 1, 1, 1, 0, 0],
                 "uncertainty_mean": 0.7, "predicted_unlabeled": [4, 3, 2]})
    TrainerState.objects.update_or_create(project=project, defaults={"current_version": current})
    return labeled


def test_owner_sees_the_model_charts_and_fixes_a_suspect_label(browser, live_server, project, alice, bob):
    from annotator.models import AnnotationChange

    labeled = model_history(project, bob)
    page = log_in(browser, live_server, "alice", f"/projects/{project.pk}/dashboard/")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.wait_for_function("window.Dashboard && window.Dashboard.charts.curve && window.Dashboard.charts.classes")
    curve = page.evaluate("window.Dashboard.model().curve")
    assert [p["accuracy"] for p in curve["cv"]] == sorted(p["accuracy"] for p in curve["cv"])
    assert len(curve["audit"]) >= 3 and curve["audit"][-1]["accuracy"] > curve["audit"][0]["accuracy"]
    assert page.locator(".chart-box.is-empty").count() == 0
    # The charts drew something: their canvases are not blank.
    for canvas in ("chart-curve", "chart-uncertainty", "chart-classes"):
        inked = page.evaluate(
            """id => { const c = document.getElementById(id); const d = c.getContext('2d')
                         .getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""", canvas)
        assert inked > 500, canvas
    rows = page.locator("#dash-suspects tbody tr")
    assert rows.count() == 2
    first = labeled[0]
    row = page.locator(f"#suspect-{first.pk}")
    guess = row.locator("button.button-primary").inner_text().removeprefix("Relabel as ")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-model.png"), full_page=True)
    row.locator("button.button-primary").click()
    page.wait_for_selector(f"#suspect-{first.pk}.suspect-done")
    assert f"Relabeled as {guess}" in page.inner_text(f"#suspect-{first.pk}")
    change = AnnotationChange.objects.get(annotation__item=first)
    assert (change.new_label, change.changed_by) == (guess, alice)
    page.locator(f"#suspect-{labeled[1].pk} button:has-text('Keep')").click()
    page.wait_for_selector(f"#suspect-{labeled[1].pk}.suspect-done")
    assert not [e for e in errors if "WebSocket" not in e], errors
