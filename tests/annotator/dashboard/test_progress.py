"""The project dashboard: its aggregates against a naive Python reference on small random
projects (answers, skips, undos, owners' corrections and deletions, imported labels), a few
hand-checked cases, a query count that does not grow with the pool, and who may open it."""
import random
import statistics
from collections import Counter, defaultdict
from itertools import permutations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotator.access import Conflict, Invalid
from annotator.dashboard import progress
from annotator.dashboard.summary import dashboard_summary
from annotator.importing.labels import import_labels
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.corrections import correct_annotation, delete_annotation
from annotator.models import Annotation, Item, Role
from annotator.projects.changes import create_project, update_settings
from annotator.projects.members import add_member
from tests.annotator.dashboard.test_reliability import naive_alpha
from tests.conftest import PASSWORD


def _items(project, n):
    """Pool items without image files: the dashboard never opens them."""
    start = Item.objects.filter(project=project).count()
    return Item.objects.bulk_create(
        Item(project=project, image=f"items/dummy-{i}.png", content_hash=f"{project.pk:08x}{i:056x}",
             width=32, height=24, pool_index=i)
        for i in range(start, start + n)
    )


def _annotator(project, username):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    add_member(project, username, Role.ANNOTATOR)
    return user


def _answer(project, user, item, label=None, *, ms=None, key=None):
    return submit_annotation(
        project, user, item_id=item.pk, label=label, skip=label is None,
        idempotency_key=key or f"{user.pk}-{item.pk}-{random.random()}", duration_ms=ms,
    ).annotation


def _random_project(project, users, seed, n_items=40):
    """Random answers by `users` (3 labels per image wanted), then undos, corrections,
    deletions and an import of labels for a few untouched images."""
    rng = random.Random(seed)
    update_settings(project, annotations_per_item=3)
    items = _items(project, n_items)
    classes = project.class_names()
    for item in items:
        for user in rng.sample(users, rng.randint(0, len(users))):
            label = None if rng.random() < 0.2 else rng.choice(classes)
            ms = None if rng.random() < 0.1 else rng.randint(200, 9000)
            try:
                _answer(project, user, item, label, ms=ms)
            except Conflict:  # the image already has its three labels
                pass
    for user in users:
        for _ in range(rng.randint(0, 2)):
            try:
                undo_last(project, user)
            except Invalid:
                pass
    live = list(Annotation.objects.filter(item__project=project, undone=False).order_by("pk"))
    for annotation in rng.sample(live, 6):
        if rng.random() < 0.5:
            delete_annotation(project, annotation.pk, by=users[0])
        elif not annotation.skipped:
            correct_annotation(project, annotation.pk, rng.choice(classes), by=users[0])
    untouched = [i for i in items if not Annotation.objects.filter(item=i, undone=False).exists()]
    rows = "".join(f"{item.content_hash},{rng.choice(classes)}\n" for item in untouched[:3])
    import_labels(project, users[0], ("file,class\n" + rows).encode())


def _reference(project):
    """The dashboard's numbers the slow, obvious way: every answer loaded into Python."""
    k = project.annotations_per_item
    items = list(Item.objects.filter(project=project).values_list("pk", flat=True))
    live = [a for a in Annotation.objects.filter(item__project=project).select_related("label", "annotator")
            if not a.undone]
    labels = [a for a in live if not a.skipped]
    labeled = {a.item_id for a in labels}
    per_item = Counter(a.item_id for a in labels)
    skipped = {a.item_id for a in live if a.skipped} - labeled
    done = {pk for pk in items if per_item[pk] >= k}
    progress = {
        "items": len(items),
        "labeled": len(labeled),
        "skipped": len(skipped),
        "done": len(done),
        "remaining": len(items) - len(done),
        "in_progress": len(labeled - done),
        "untouched": len(items) - len(labeled) - len(skipped),
        "multi_labeled": sum(1 for n in per_item.values() if n >= 2),
    }
    classes = Counter(a.label.name for a in labels)
    per_class = [(name, classes[name]) for name in project.class_names()]

    by_item = defaultdict(list)
    for a in labels:
        by_item[a.item_id].append(a)
    pairs, agreeing = Counter(), Counter()
    for answers in by_item.values():
        for a, b in permutations(answers, 2):
            assert a.annotator_id != b.annotator_id
            pairs[a.annotator.username] += 1
            agreeing[a.annotator.username] += a.label_id == b.label_id
    rows = {}
    for a in live:
        row = rows.setdefault(a.annotator.username, {"labels": 0, "skips": 0, "imported": 0, "times": []})
        row["skips" if a.skipped else "labels"] += 1
        row["imported"] += a.source == Annotation.Source.IMPORT
        if not a.skipped and a.duration_ms is not None:
            row["times"].append(a.duration_ms)
    annotators = {}
    for name, row in rows.items():
        times = row.pop("times")
        annotators[name] = {
            **row,
            "skip_rate": row["skips"] / (row["labels"] + row["skips"]),
            "median_ms": statistics.median(times) if times else None,
            "pairs": pairs[name],
            "agreeing": agreeing[name],
            "agreement": agreeing[name] / pairs[name] if pairs[name] else None,
            "reviewed": 0, "review_correct": 0, "review_accuracy": None,  # tests/annotator/dashboard/test_reliability.py
        }
    total = sum(pairs.values()) // 2
    agree = sum(agreeing.values()) // 2
    overall = {"pairs": total, "agreeing": agree, "agreement": agree / total if total else None}
    overall["alpha"] = naive_alpha([[a.label_id for a in answers] for answers in by_item.values()])
    return progress, per_class, annotators, overall


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_aggregates_match_a_naive_reference(project, alice, bob, seed):
    users = [alice, bob, _annotator(project, "erin"), _annotator(project, "frank")]
    _random_project(project, users, seed)
    progress, per_class, annotators, overall = _reference(project)
    assert overall["pairs"] > 0 and any(a["imported"] for a in annotators.values())  # the data exercises them

    summary = dashboard_summary(project)
    assert summary["progress"] == progress
    assert summary["per_class"] == per_class
    got = {row.pop("username"): row for row in summary["annotators"]}
    assert got.keys() == annotators.keys()
    for name, expected in annotators.items():
        assert got[name] == pytest.approx(expected), name
    alpha = summary["agreement"].pop("krippendorff")
    assert alpha["alpha"] == pytest.approx(overall.pop("alpha")) and alpha["kind"] == "nominal"
    assert summary["agreement"] == pytest.approx(overall)
    labels = [row["labels"] for row in summary["annotators"]]
    assert labels == sorted(labels, reverse=True)


def test_median_is_the_middle_time_or_the_mean_of_the_two_middle_times(project, alice, bob):
    update_settings(project, annotations_per_item=2)
    items = _items(project, 6)
    for item, ms in zip(items, [400, 100, 300, 200]):
        _answer(project, alice, item, "zero", ms=ms)
    for item, ms in zip(items, [5000, 1000, 3000]):
        _answer(project, bob, item, "one", ms=ms)
    _answer(project, bob, items[3], None, ms=1)  # a skip: not a label, so not timed here
    _answer(project, bob, items[4], "two")  # no time sent
    assert progress.median_label_ms(project) == {alice.pk: 250, bob.pk: 3000}


def test_agreement_counts_pairs_of_annotators_on_the_same_image(project, alice, bob):
    erin = _annotator(project, "erin")
    update_settings(project, annotations_per_item=3)
    first, second, third = _items(project, 3)
    _answer(project, alice, first, "zero")
    _answer(project, bob, first, "zero")
    _answer(project, erin, first, "one")
    _answer(project, alice, second, "two")
    _answer(project, bob, second, "two")
    _answer(project, erin, second, None)  # a skip is not part of any pair
    _answer(project, erin, third, "two")  # alone on its image: no pair
    pairs = progress.agreement_pairs(project)
    assert pairs == {alice.pk: (3, 2), bob.pk: (3, 2), erin.pk: (2, 0)}
    rows, overall = progress.annotators(project)
    assert overall == {"pairs": 4, "agreeing": 2, "agreement": 0.5}
    assert {r["username"]: r["agreement"] for r in rows} == {"alice": 2 / 3, "bob": 2 / 3, "erin": 0.0}


def test_an_empty_project_has_zeros(project):
    summary = dashboard_summary(project)
    assert summary["progress"] == {
        "items": 0, "labeled": 0, "skipped": 0, "done": 0, "remaining": 0,
        "in_progress": 0, "untouched": 0, "multi_labeled": 0,
    }
    assert summary["per_class"] == [("zero", 0), ("one", 0), ("two", 0)]
    assert summary["annotators"] == []
    assert summary["agreement"] == {"pairs": 0, "agreeing": 0, "agreement": None, "krippendorff": {
        "alpha": None, "values": 0, "items": 0, "kind": "nominal"}}


def test_another_projects_answers_do_not_count(project, alice, bob):
    other = create_project(alice, name="Other", classes=["zero", "one"])
    _answer(other, alice, _items(other, 1)[0], "zero", ms=100)
    _answer(project, alice, _items(project, 2)[0], "one", ms=700)
    summary = dashboard_summary(project)
    assert summary["progress"]["items"] == 2
    assert summary["per_class"] == [("zero", 0), ("one", 1), ("two", 0)]
    assert [(r["username"], r["labels"], r["median_ms"]) for r in summary["annotators"]] == [("alice", 1, 700)]


def test_the_summary_takes_eight_queries_whatever_the_pool_size(project, alice, bob, django_assert_num_queries):
    """Six for progress, classes and annotators; Krippendorff's alpha and the reviews one each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with_model = []
    for n in (3, 60):
        for item in _items(project, n):
            _answer(project, alice, item, "one", ms=100)
        with django_assert_num_queries(8):
            dashboard_summary(project, with_model=False)
        with CaptureQueriesContext(connection) as queries:
            dashboard_summary(project)
        with_model.append(len(queries))
    assert with_model[0] == with_model[1] <= 14, with_model


def test_the_page_does_not_query_more_for_a_bigger_pool(client, project, alice, bob, django_assert_max_num_queries):
    client.force_login(alice)
    url = reverse("project-dashboard", args=[project.pk])
    for item in _items(project, 2):
        _answer(project, bob, item, "one", ms=100)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for item in _items(project, 80):
        _answer(project, bob, item, "two", ms=100)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


# --- the page -------------------------------------------------------------------------------


def _page(client, project):
    return client.get(reverse("project-dashboard", args=[project.pk]))


def test_owner_sees_progress_classes_annotators_and_exports(client, project, alice, bob):
    update_settings(project, annotations_per_item=2)
    first, second, _third = _items(project, 3)
    _answer(project, alice, first, "zero", ms=1500)
    _answer(project, bob, first, "one", ms=2500)
    _answer(project, bob, second, None, ms=900)
    client.force_login(alice)
    response = _page(client, project)
    assert response.status_code == 200
    html = response.content.decode()
    progress = response.context["progress"]
    assert (progress["items"], progress["labeled"], progress["skipped"], progress["remaining"]) == (3, 1, 1, 2)
    assert [(r["username"], r["labels"], r["skips"], r["median_s"]) for r in response.context["annotator_rows"]] == [
        ("alice", 1, 0, "1.5 s"), ("bob", 1, 1, "2.5 s"),
    ]
    assert "<strong>0%</strong> pairwise agreement: 0 of 1 pairs" in " ".join(html.split())
    for fmt in ("csv", "jsonl", "imagefolder", "model", "embeddings"):
        assert f"/projects/{project.pk}/export/?format={fmt}" in html
    assert 'name="predictions" value="1"' in html and 'name="min_confidence"' in html
    assert "data-trainer-status" in html and "js/live.js" in html


def test_viewer_sees_it_read_only(client, project, dave):
    client.force_login(dave)
    response = _page(client, project)
    assert response.status_code == 200
    assert "read-only" in response.content.decode()
    assert "<form method=\"post\"" not in response.content.decode().split("<main", 1)[1]


def test_it_refuses_annotator_with_a_sentence(client, project, bob):
    client.force_login(bob)
    response = _page(client, project)
    assert response.status_code == 403
    assert "The dashboard is for this project&#x27;s owners, reviewers and viewers" in response.content.decode()


def test_it_rejects_outsider(client, project, charlie):
    client.force_login(charlie)
    assert _page(client, project).status_code == 404


def test_it_redirects_anonymous_to_login(client, project):
    response = _page(client, project)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("username, shown", [("alice", True), ("dave", True), ("bob", False)])
def test_the_overview_links_to_the_dashboard_for_owners_and_viewers(client, project, username, shown):
    client.force_login(get_user_model().objects.get(username=username))
    html = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert (reverse("project-dashboard", args=[project.pk]) in html) is shown
