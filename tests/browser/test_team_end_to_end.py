"""A team runs two projects end to end in the browser: the owner creates a multi-label
project and a single-label one with a "none of these" class, two annotators label (a set;
"none"; "unsure"; a disagreement), one of them bulk-labels 40 images in one confirm, the
reviewer gets the unsure answer and the disagreement and fixes both, and the owner's dashboard
shows each annotator's accuracy against the reviews and Krippendorff's alpha; the exports the
project's kind allows come out in their formats (the loaders are the exporting tests' job).
Screenshots go to test-artifacts/."""
import io
import json
import os
import zipfile

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator.importing import images
from annotator.labeling.answers import submit_annotation
from annotator.models import Annotation, Item, Project, Review, Role
from annotator.projects.members import add_member
from tests.annotator.labeling.bulk_helpers import publish
from tests.browser.helpers import ARTIFACTS, BROWSER_MARKS, log_in
from tests.browser.test_bulk import digit
from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls between browser steps

pytestmark = BROWSER_MARKS


def _create(page, base, name, classes, **fields):
    page.goto(f"{base}/projects/new/")
    page.fill("input[name=name]", name)
    page.fill("textarea[name=classes]", "\n".join(classes))
    for field, value in fields.items():
        if value is True:
            page.check(f"input[name={field}]")
        else:
            page.fill(f"input[name={field}]", str(value))
    page.click("text=Create project")
    page.wait_for_load_state()
    project = Project.objects.filter(name=name).first()
    assert project is not None, (page.url, page.inner_text("body")[:600])
    return project


def _settled(page):
    page.wait_for_function("() => window.labeler.pending() === 0 && window.labeler.prefetchReady()")


def test_owner_two_annotators_and_a_reviewer_run_both_kinds_of_project(browser, live_server, alice, bob):
    for name in ("carol", "rita"):
        get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD)
    base = live_server.url

    # The owner creates both projects in the browser.
    owner = log_in(browser, live_server, "alice", "/projects/new/")
    tags = _create(owner, base, "Scenes", ["cat", "dog", "car"], multi_label=True)
    shapes = _create(owner, base, "Shapes", ["circle", "square"], none_class="none", annotations_per_item=2)
    assert tags.multi_label and not shapes.multi_label
    assert [(c.name, c.is_none) for c in shapes.ordered_classes()] == [("circle", False), ("square", False),
                                                                         ("none", True)]
    for project in (tags, shapes):
        add_member(project, "bob", Role.ANNOTATOR)
        add_member(project, "carol", Role.ANNOTATOR)
        add_member(project, "rita", Role.REVIEWER)
    uploads = [SimpleUploadedFile(f"scene-{n:02}.png", digit(100 + n), "image/png") for n in range(4)]
    assert images.import_uploads(tags, uploads, user=alice).imported == 4
    uploads = [SimpleUploadedFile(f"shape-{n:02}.png", digit(n), "image/png") for n in range(44)]
    assert images.import_uploads(shapes, uploads, user=alice).imported == 44

    # bob, multi-label: two classes toggled by key, Enter saves the set.
    page = log_in(browser, live_server, "bob", f"/projects/{tags.pk}/label/")
    _settled(page)
    scene = page.evaluate("() => window.labeler.current()")
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => window.labeler.current() !== {scene}")
    _settled(page)
    answer = Annotation.objects.get(item_id=scene, annotator=bob)
    assert answer.label_id is None and sorted(c.name for c in answer.labels.all()) == ["car", "cat"]

    # bob, single-label: "none of these" (N) on one image, "unsure" (M) on the next.
    page.goto(f"{base}/projects/{shapes.pk}/label/")
    _settled(page)
    disputed = page.evaluate("() => window.labeler.current()")
    page.keyboard.press("n")
    page.wait_for_function(f"() => window.labeler.current() !== {disputed}")
    doubtful = page.evaluate("() => window.labeler.current()")
    page.keyboard.press("m")
    page.wait_for_function(f"() => window.labeler.current() !== {doubtful}")
    _settled(page)
    page.screenshot(path=str(ARTIFACTS / "team-labeling.png"))
    assert Annotation.objects.get(item_id=disputed, annotator=bob).label.name == "none"
    assert Annotation.objects.get(item_id=doubtful, annotator=bob).unsure
    page.goto(f"{base}/projects/{tags.pk}/")  # bob's leases on Shapes run out with the page
    # carol sees a circle where bob saw none (her answer goes in over the API's service).
    submit_annotation(shapes, get_user_model().objects.get(username="carol"), item_id=disputed, label="circle",
                      idempotency_key="carol-1")

    # bob bulk-labels 40 images the model puts in "square" with one confirm.
    items = list(Item.objects.filter(project=shapes).order_by("pool_index"))
    probs = np.zeros((len(items), 3), np.float32)
    probs[:, 1] = np.linspace(0.5, 0.99, len(items))
    probs[:, 0] = 1 - probs[:, 1]
    publish(shapes, probs, [i.pool_index for i in items])
    page.goto(f"{base}/projects/{shapes.pk}/label/bulk/?label=square&size=40")
    page.wait_for_selector(".bulk-tile")
    assert page.locator(".bulk-tile").count() == 40
    page.focus(".bulk-tile")
    page.keyboard.press("Enter")
    page.wait_for_selector("#bulk-status[data-kind=ok]")
    bulk = Annotation.objects.filter(item__project=shapes, annotator=bob, source="bulk", undone=False)
    assert bulk.count() == 40 and not bulk.filter(is_audit=True).exists()
    assert not bulk.filter(item_id__in=[disputed, doubtful]).exists()  # bob answered those already

    # rita reviews: the disagreement, then the unsure image; she fixes both.
    review = log_in(browser, live_server, "rita", f"/projects/{shapes.pk}/review/")
    assert review.get_attribute("#review-item", "data-item") == str(disputed)
    assert review.is_visible('[data-reason="disagreement"]')
    review.click('#review-fix button[value="circle"]')
    review.wait_for_selector("text=Fixed: circle.")
    assert review.get_attribute("#review-item", "data-item") == str(doubtful)
    assert review.is_visible('[data-reason="unsure"]')
    review.click('#review-fix button[value="square"]')
    review.wait_for_selector("text=Fixed: square.")
    review.screenshot(path=str(ARTIFACTS / "team-review.png"))
    assert set(Review.objects.values_list("item_id", "verdict")) == {(disputed, "fix"), (doubtful, "fix")}
    assert Item.objects.get(pk=doubtful).label_count == 1  # the unsure image is labeled now

    # The owner's dashboard: accuracy against the reviews per annotator, and alpha.
    owner.goto(f"{base}/projects/{shapes.pk}/dashboard/")
    accuracy = {row: owner.inner_text(f'tr[data-annotator="{row}"] [data-accuracy]') for row in ("bob", "carol")}
    assert accuracy["bob"].startswith("0%") and accuracy["carol"].startswith("100%")  # bob said none, it was a circle
    assert "Krippendorff" in owner.inner_text("#dash-alpha")
    owner.screenshot(path=str(ARTIFACTS / "team-dashboard.png"), full_page=True)

    # Exports: the multi-label project's sets as Hugging Face-style lists; its class folders refused.
    jsonl = owner.request.get(f"{base}/projects/{tags.pk}/export/?format=jsonl")
    rows = [json.loads(line) for line in jsonl.text().splitlines()]
    assert [r["labels"] for r in rows] == [["cat", "car"]]
    refused = owner.request.get(f"{base}/projects/{tags.pk}/export/?format=imagefolder")
    assert refused.status == 400 and "multi-label" in refused.text()
    split = owner.request.get(f"{base}/projects/{shapes.pk}/export/?format=imagefolder&split=0.8,0.2")
    assert split.status == 200
    names = zipfile.ZipFile(io.BytesIO(split.body())).namelist()
    assert any(n.startswith("train/square/") for n in names) and any(n.startswith("val/") for n in names)
    studio = owner.request.get(f"{base}/projects/{tags.pk}/export/?format=labelstudio")
    tasks = json.loads(zipfile.ZipFile(io.BytesIO(studio.body())).read("tasks.json"))
    answered = [t for t in tasks if t["annotations"]]
    assert answered[0]["annotations"][0]["result"][0]["value"]["choices"] == ["cat", "car"]
