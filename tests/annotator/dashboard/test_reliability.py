"""Krippendorff's alpha against Krippendorff's own worked example (missing data included), a
naive pairwise reference on random data, perfect agreement and chance; the dashboard's alpha
(single- and multi-label) and each annotator's accuracy against reviews, on hand-computed
projects; and the page and API that show them."""
import random
from itertools import permutations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from annotator.dashboard.reliability import label_alpha, nominal_alpha, review_accuracy
from annotator.dashboard.summary import dashboard_summary
from annotator.labeling.answers import submit_annotation
from annotator.models import Role
from annotator.projects.changes import create_project, update_settings
from annotator.projects.members import add_member
from annotator.review.verdicts import submit_review
from tests.conftest import PASSWORD

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, "." missing. Nominal alpha = 0.743.
KRIPPENDORFF_EXAMPLE = [
    "1 2 3 3 2 1 4 1 2 . . .",
    "1 2 3 3 2 2 4 1 2 5 . 3",
    ". 3 3 3 2 3 4 2 2 5 1 .",
    "1 2 3 3 2 4 4 1 2 5 1 .",
]


def naive_alpha(units):
    """Alpha from its pairwise definition, by brute force: D_o over every ordered pair of values
    within a unit (weight 1 / (m_u - 1)), D_e over every ordered pair of pairable values of
    the whole data. `units` are lists of values (None: missing)."""
    units = [[v for v in unit if v is not None] for unit in units]
    units = [unit for unit in units if len(unit) >= 2]
    pooled = [v for unit in units for v in unit]
    n = len(pooled)
    if n < 2:
        return None
    observed = sum((a != b) / (len(unit) - 1) for unit in units for a, b in permutations(unit, 2)) / n
    expected = sum(a != b for a, b in permutations(pooled, 2)) / (n * (n - 1))
    return None if expected == 0 else 1 - observed / expected


def _counts(units):
    out = []
    for unit in units:
        counts = {}
        for v in unit:
            if v is not None:
                counts[v] = counts.get(v, 0) + 1
        out.append(counts)
    return out


def _example_units():
    rows = [[None if v == "." else int(v) for v in row.split()] for row in KRIPPENDORFF_EXAMPLE]
    return [list(unit) for unit in zip(*rows)]


def test_krippendorffs_worked_example():
    alpha, values = nominal_alpha(_counts(_example_units()))
    assert values == 40  # unit 12 has one value only: not pairable
    assert round(alpha, 3) == 0.743
    assert alpha == pytest.approx(naive_alpha(_example_units()))


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_naive_reference_on_random_data(seed):
    rng = random.Random(seed)
    units = [[rng.choice([None, "a", "b", "c", "c"]) for _coder in range(rng.randint(1, 5))] for _u in range(40)]
    assert nominal_alpha(_counts(units))[0] == pytest.approx(naive_alpha(units))


def test_perfect_agreement_is_one_and_chance_is_about_zero():
    assert nominal_alpha([{"a": 3}, {"b": 2}, {"c": 4}])[0] == 1.0
    rng = random.Random(7)
    chance = [[rng.choice("abcd") for _coder in range(3)] for _u in range(3000)]
    assert abs(nominal_alpha(_counts(chance))[0]) < 0.03
    assert nominal_alpha([{"a": 2}, {"a": 3}]) == (None, 5)  # one class throughout: undefined
    assert nominal_alpha([{"a": 1}, {}]) == (None, 0)  # nothing pairs


def _user(project, name, role=Role.ANNOTATOR):
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    add_member(project, name, role)
    return user


def _answer(project, user, item, key, **answer):
    return submit_annotation(project, user, item_id=item.pk, idempotency_key=key, **answer).annotation


def test_the_dashboards_alpha_on_a_hand_computed_project(project, alice, bob, make_items):
    """Items: {zero, zero}, {zero, one}, {one, one, skip}, {two} alone. Pairable: 6 values;
    o(zero,zero)=2, o(one,one)=2, o(zero,one)=o(one,zero)=1; n_zero=3, n_one=3.
    D_o = 2/6, D_e = (3*3 + 3*3)/(6*5) = 18/30, alpha = 1 - (1/3)/(3/5) = 4/9."""
    erin = _user(project, "erin")
    update_settings(project, annotations_per_item=3)
    a, b, c, d = make_items(4)
    for item, first, second in [(a, "zero", "zero"), (b, "zero", "one"), (c, "one", "one")]:
        _answer(project, alice, item, f"a{item.pk}", label=first)
        _answer(project, bob, item, f"b{item.pk}", label=second)
    _answer(project, erin, c, "e1", skip=True)
    _answer(project, erin, d, "e2", label="two")
    got = label_alpha(project)
    assert got == {"alpha": pytest.approx(4 / 9), "values": 6, "items": 3, "kind": "nominal"}
    assert dashboard_summary(project, with_model=False)["agreement"]["krippendorff"]["alpha"] == pytest.approx(4 / 9)


def test_multi_label_alpha_is_the_mean_of_the_per_class_alphas(alice, bob, make_items):
    """Items: {cat} & {cat, dog}; {} & {}; {dog} & {dog}. cat: units (1,1), (0,0), (0,0) ->
    perfect, 1. dog: (0,1), (0,0), (1,1): n=6, n0=3, n1=3, o01=o10=1, D_o=2/6, D_e=18/30 -> 4/9.
    Mean: (1 + 4/9) / 2 = 13/18."""
    tags = create_project(alice, name="Tags", classes=["cat", "dog"], multi_label=True, annotations_per_item=2)
    add_member(tags, "bob", Role.ANNOTATOR)
    items = make_items(3, target=tags)
    for item, first, second in zip(items, [["cat"], [], ["dog"]], [["cat", "dog"], [], ["dog"]]):
        _answer(tags, alice, item, f"a{item.pk}", labels=first)
        _answer(tags, bob, item, f"b{item.pk}", labels=second)
    got = label_alpha(tags)
    assert got["kind"] == "per-class mean" and got["items"] == 3 and got["values"] == 6
    assert got["per_class"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(4 / 9)}
    assert got["alpha"] == pytest.approx(13 / 18)


def test_accuracy_against_reviews_by_hand(project, alice, bob, make_items):
    """Item 1: bob one, erin two, fixed to two: bob wrong, erin right. Item 2: bob zero,
    accepted: right. Item 3: erin unsure, fixed to one: not graded. Item 4: bob one, fixed to
    zero: wrong. bob 1/3, erin 1/1."""
    erin = _user(project, "erin")
    rita = _user(project, "rita", Role.REVIEWER)
    update_settings(project, annotations_per_item=2)
    one, two, three, four = make_items(4)
    _answer(project, bob, one, "b1", label="one")
    _answer(project, erin, one, "e1", label="two")
    _answer(project, bob, two, "b2", label="zero")
    _answer(project, erin, three, "e3", unsure=True)
    _answer(project, bob, four, "b4", label="one")
    submit_review(project, rita, item_id=one.pk, verdict="fix", label="two")
    submit_review(project, rita, item_id=two.pk, verdict="accept")
    submit_review(project, rita, item_id=three.pk, verdict="fix", label="one")
    submit_review(project, alice, item_id=four.pk, verdict="fix", label="zero")
    assert review_accuracy(project) == {bob.pk: (3, 1), erin.pk: (1, 1)}
    rows = {r["username"]: r for r in dashboard_summary(project, with_model=False)["annotators"]}
    assert (rows["bob"]["reviewed"], rows["bob"]["review_correct"]) == (3, 1)
    assert rows["bob"]["review_accuracy"] == pytest.approx(1 / 3) and rows["erin"]["review_accuracy"] == 1.0
    assert rows["rita"]["reviewed"] == 0 and rows["rita"]["review_accuracy"] is None  # her review answer


def test_the_page_and_the_api_show_alpha_and_accuracy(client, api, project, alice, bob, make_items):
    update_settings(project, annotations_per_item=2)
    a, b = make_items(2)
    _answer(project, alice, a, "a1", label="zero")
    _answer(project, bob, a, "b1", label="zero")
    _answer(project, alice, b, "a2", label="zero")
    _answer(project, bob, b, "b2", label="one")
    submit_review(project, alice, item_id=b.pk, verdict="fix", label="one")
    body = api(alice).get(f"/api/projects/{project.pk}/dashboard/").json()
    rows = {r["username"]: r for r in body["annotators"]}
    assert rows["bob"]["review_accuracy"] == 1.0 and rows["alice"]["review_accuracy"] == 0.0
    assert body["agreement"]["krippendorff"]["kind"] == "nominal"
    assert body["agreement"]["krippendorff"]["alpha"] == 1.0  # labels as they stand: the fix made b agree
    client.force_login(alice)
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "Krippendorff's alpha <strong>1.00</strong>" in html
    assert "Accuracy (reviewed)" in html and "100% <span class=\"muted small\">of 1</span>" in html
