"""The bulk grid's candidates, against naive references over hand-built model files: the
open images by the probability of a class, and an image's nearest open neighbours."""
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotator.access import Invalid
from annotator.labeling import candidates
from annotator.labeling.answers import submit_annotation
from annotator.models import Lease
from tests.annotator.labeling.bulk_helpers import publish


def _ids(found):
    return [c.item.pk for c in found.candidates]


@pytest.fixture
def scored(project, alice, bob, make_items):
    """30 items with random probabilities (rounded so that ties occur); one answered by bob,
    one held by alice, one done, and the last imported after the version (no row)."""
    items = make_items(30)
    rng = np.random.default_rng(7)
    probs = np.round(rng.dirichlet([1, 1, 1], size=29), 1).astype(np.float32)
    publish(project, probs, [i.pool_index for i in items[:29]])
    submit_annotation(project, bob, item_id=items[3].pk, label="one", idempotency_key="b")
    Lease.objects.create(project=project, item=items[5], user=alice, expires_at=timezone.now() + timedelta(minutes=5))
    submit_annotation(project, alice, item_id=items[8].pk, label="two", idempotency_key="a")
    Lease.objects.create(project=project, item=items[9], user=bob, expires_at=timezone.now() + timedelta(minutes=5))
    return items, probs


def test_by_class_is_the_naive_ranking_of_open_images(project, bob, scored):
    items, probs = scored
    shut = {items[3].pk, items[5].pk, items[8].pk}  # bob's own lease on items[9] does not shut it
    for column, name in enumerate(["zero", "one", "two"]):
        naive = sorted((i for i in range(29) if items[i].pk not in shut),
                       key=lambda i, c=column: (-probs[i, c], items[i].pool_index))
        found = candidates.by_class(project, bob, name, 12)
        assert _ids(found) == [items[i].pk for i in naive[:12]]
        assert [c.score for c in found.candidates] == [round(float(probs[i, column]), 4) for i in naive[:12]]
        assert found.version == 1 and found.label == name
        assert all(c.suggestion["label"] in ("zero", "one", "two") for c in found.candidates)


def test_by_class_walks_past_a_top_full_of_answered_images(project, bob, make_items):
    items = make_items(40)
    probs = np.zeros((40, 3), np.float32)
    probs[:, 0] = np.linspace(1, 0, 40)
    publish(project, probs, [i.pool_index for i in items])
    for item in items[:30]:  # the 30 most confident are answered already
        submit_annotation(project, bob, item_id=item.pk, label="zero", idempotency_key=f"k{item.pk}")
    found = candidates.by_class(project, bob, "zero", 4)  # the first window is 32 rows
    assert _ids(found) == [i.pk for i in items[30:34]]


def test_top_rows_matches_a_full_sort():
    rng = np.random.default_rng(3)
    for n, m in [(50, 5), (50, 50), (200, 17), (10, 30)]:
        column = np.round(rng.random(n), 1).astype(np.float32)  # many ties
        pool_index = rng.permutation(n * 3)[:n]
        full = sorted(range(n), key=lambda i: (-column[i], pool_index[i]))
        got = candidates.top_rows(column, pool_index, m).tolist()
        assert got[:m] == full[:m] and got == full[:len(got)]


def test_no_model_yet_gives_an_empty_grid_with_a_reason(project, bob, make_items):
    make_items(3)
    found = candidates.by_class(project, bob, "one", 12)
    assert found.candidates == [] and "no guesses yet" in found.detail
    found = candidates.similar_to_item(project, bob, make_items(1)[0].pk, 12)
    assert found.candidates == [] and "neighbour graph" in found.detail


def _naive_near(sims, anchor, k):
    """Brute force over the full similarity matrix: the anchor's k most similar images, then
    theirs, each scored by its best path (a product of two similarities), the anchor left out."""
    first = {int(j): sims[anchor, j] for j in np.argsort(-sims[anchor], kind="stable")[:k]}
    best = dict(first)
    for j, s in first.items():
        for j2 in np.argsort(-sims[j], kind="stable")[:k]:
            best[int(j2)] = max(best.get(int(j2), -np.inf), np.float32(s) * sims[j, j2])
    best.pop(anchor, None)
    return best


def test_similar_images_are_the_anchor_then_its_nearest_open_neighbours(project, alice, bob, make_items):
    n, k = 40, 6
    items = make_items(n)
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(n, 8))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    # the similarities as the file keeps them (float16), so that the reference sees the same values
    sims = (unit @ unit.T).astype(np.float16).astype(np.float32)
    np.fill_diagonal(sims, -np.inf)
    near = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    publish(project, np.full((n, 3), 1 / 3), [i.pool_index for i in items], near=near,
            sims=np.take_along_axis(sims, near, 1))
    anchor = 4
    closed = int(near[anchor, 0])  # its nearest neighbour is answered by bob already
    submit_annotation(project, bob, item_id=items[closed].pk, label="one", idempotency_key="b")
    found = candidates.similar_to_item(project, bob, items[anchor].pk, 12)
    reference = _naive_near(sims, anchor, k)
    reference.pop(closed)
    ranked = sorted(reference, key=lambda j: (-reference[j], items[j].pool_index))[:11]
    assert _ids(found) == [items[anchor].pk] + [items[j].pk for j in ranked]
    assert [c.score for c in found.candidates] == [1.0] + [round(float(reference[j]), 4) for j in ranked]


def test_an_image_newer_than_the_model_is_offered_alone(project, bob, make_items):
    items = make_items(3)
    publish(project, np.full((2, 3), 1 / 3), [i.pool_index for i in items[:2]], near=[[1], [0]], sims=[[0.9], [0.9]])
    found = candidates.similar_to_item(project, bob, items[2].pk, 12)
    assert _ids(found) == [items[2].pk] and "newer than the model" in found.detail


def test_grid_size_bounds(settings):
    assert candidates.grid_size(None) == settings.BULK_GRID_SIZE
    assert candidates.grid_size("12") == 12 and candidates.grid_size(48) == 48
    for bad in ("11", "49", "ten", "4.5"):
        with pytest.raises(Invalid, match="from 12 to 48"):
            candidates.grid_size(bad)


def test_a_query_names_a_class_or_an_image(project, bob):
    with pytest.raises(Invalid, match="not both and not neither"):
        candidates.for_query(project, bob)
    with pytest.raises(Invalid, match="not both"):
        candidates.for_query(project, bob, label="one", similar_to="3")
    with pytest.raises(Invalid, match="Unknown class"):
        candidates.for_query(project, bob, label="nine")
    with pytest.raises(Invalid, match="not in this project"):
        candidates.for_query(project, bob, similar_to="999999")
