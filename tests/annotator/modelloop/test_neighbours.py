"""The neighbour files: what the trainer writes with a version (the served learner's kNN graph,
first NEIGHBOURS_K neighbours a row, most similar first) against a brute-force cosine kNN, the
hard link while the graph is unchanged, and the NumPy reader of the web side."""
import os
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from annotator.modelloop import neighbours, results
from annotator.modelloop.bridge import ProjectModel
from mlcore.embedding_learner import EmbeddingLearner
from mlcore.presets import recommended_config

N, DIM = 70, 12


def _vectors(seed=0, n=N):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _brute_force(vectors, k):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit.astype(np.float64) @ unit.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, 1)


def _model(learner, n=N):
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ProjectModel(1, learner, ids, ids * 2, None, 32, 3, [1, 2, 3], ["a", "b", "c"])


@pytest.fixture
def learner():
    return EmbeddingLearner(recommended_config(3, 224, 3), _vectors(), device="cpu")


def test_the_learners_neighbours_are_the_exact_cosine_knn(learner):
    idx, sims = learner.neighbours(10)
    want_idx, want_sims = _brute_force(_vectors(), 10)
    assert idx.shape == (N, 10) and idx.dtype == np.int64
    assert np.array_equal(idx, want_idx)
    assert np.allclose(sims, want_sims, atol=1e-5)
    assert learner.neighbours(10_000)[0].shape[1] == learner.graph.idx.shape[1]  # at most the graph's k


def _folder(name):
    base = Path(settings.ARTIFACTS_ROOT) / name
    base.mkdir(parents=True)
    return base


def test_written_files_read_back_and_link_while_the_graph_is_unchanged(learner):
    model = _model(learner)
    first = _folder("v1")
    np.save(first / "pool_index.npy", model.pool_index)
    results.write_neighbours(first, model)
    idx = np.load(first / neighbours.NEIGHBOURS_FILE)
    sims = np.load(first / neighbours.NEIGHBOUR_SIMS_FILE)
    k = min(neighbours.NEIGHBOURS_K, learner.graph.idx.shape[1])  # the preset's graph may be smaller
    want_idx, want_sims = _brute_force(_vectors(), k)
    assert idx.dtype == np.int32 and sims.dtype == np.float16 and idx.shape == (N, k)
    assert np.array_equal(idx, want_idx) and np.allclose(sims, want_sims, atol=1e-3)

    second = _folder("v2")
    results.write_neighbours(second, model)  # same learner, same graph: a link, not a copy
    assert os.stat(second / neighbours.NEIGHBOURS_FILE).st_ino == os.stat(first / neighbours.NEIGHBOURS_FILE).st_ino

    model.learner = learner.with_embeddings(_vectors(seed=1))  # new embeddings: a new graph, written again
    third = _folder("v3")
    results.write_neighbours(third, model)
    assert os.stat(third / neighbours.NEIGHBOURS_FILE).st_ino != os.stat(first / neighbours.NEIGHBOURS_FILE).st_ino
    assert np.array_equal(np.load(third / neighbours.NEIGHBOURS_FILE), _brute_force(_vectors(seed=1), k)[0])


def test_the_reader_maps_pool_indices_and_ranks_two_hops():
    graph = neighbours.Neighbours(
        pool_index=np.array([10, 20, 30, 40, 50]),
        idx=np.array([[1, 2], [0, 3], [0, 1], [4, -1], [3, -1]], dtype=np.int32),
        sims=np.array([[0.9, 0.5], [0.9, 0.8], [0.5, 0.4], [0.7, 0], [0.7, 0]], dtype=np.float16),
    )
    near, scores = graph.ranked(10)
    # 20 (0.9), 40 via 20 (0.9 x 0.8 = 0.72), 30 (0.5; via 20 would be 0.9 x 0.4... not listed there)
    assert near.tolist() == [20, 40, 30]
    assert np.allclose(scores, [0.9, 0.72, 0.5], atol=2e-3)
    assert graph.ranked(10, hops=1)[0].tolist() == [20, 30]
    assert graph.ranked(60)[0].tolist() == []  # not in this version
    assert graph.ranked(50)[0].tolist() == [40]  # -1: fewer neighbours than k; itself left out


def test_missing_or_mismatched_files_read_as_none(project, make_items):
    from tests.annotator.labeling.bulk_helpers import publish

    items = make_items(2)
    version = publish(project, np.full((2, 3), 1 / 3), [i.pool_index for i in items])
    assert neighbours.load(version) is None  # a version from before neighbour files
    folder = Path(settings.ARTIFACTS_ROOT) / version.artifact_dir
    np.save(folder / neighbours.NEIGHBOURS_FILE, np.zeros((3, 2), np.int32))
    np.save(folder / neighbours.NEIGHBOUR_SIMS_FILE, np.zeros((3, 2), np.float16))
    assert neighbours.load(version) is None  # rows do not match the pool
