"""`manage.py bench_scale`: on a tiny pool (300 items, 16 dimensions, 3 classes) it runs the
loop's real steps on the test database, writes every figure, and removes its throwaway
project afterwards unless --keep."""
import json

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotator.management.commands.bench_scale import synthetic_embeddings
from annotator.modelloop.predictions import artifact_path
from annotator.models import Annotation, Item, ModelVersion, Project, QueueEntry, TrainerState

TINY = ["--items", "300", "--dim", "16", "--classes", "3", "--labels", "10", "--next", "20", "--no-progress"]
KEYS = {"items", "dim", "classes", "insert_s", "graph_s", "cold_start_s", "fast_path_s", "fast_path_runs",
        "peak_rss_mb", "dashboard_s", "next_p95_ms", "database"}


def run(tmp_path, *extra):
    out = tmp_path / "scale.json"
    call_command("bench_scale", "--yes", *TINY, "--json", str(out), *extra)
    return json.loads(out.read_text())


def test_synthetic_embeddings_are_seeded_unit_rows_in_clusters():
    emb, truth = synthetic_embeddings(500, 16, 3, seed=4, progress=False)
    again, truth_again = synthetic_embeddings(500, 16, 3, seed=4, progress=False)
    assert emb.shape == (500, 16) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb, again) and np.array_equal(truth, truth_again)
    assert set(np.unique(truth)) == {0, 1, 2}
    # nearer to their own cluster's mean than to the others'
    means = np.stack([emb[truth == c].mean(0) for c in range(3)])
    assert ((emb @ means.T).argmax(1) == truth).mean() > 0.9


@pytest.mark.django_db
def test_refuses_without_yes(tmp_path):
    with pytest.raises(CommandError, match="--yes"):
        call_command("bench_scale", *TINY, "--json", str(tmp_path / "no.json"))
    assert not Project.objects.exists() and not (tmp_path / "no.json").exists()


@pytest.mark.django_db
def test_runs_the_loop_and_removes_the_project(tmp_path):
    users = get_user_model().objects.count()
    result = run(tmp_path, "--seed", "3")
    assert KEYS <= set(result)
    assert (result["items"], result["dim"], result["classes"]) == (300, 16, 3)
    assert result["database"] == "sqlite" or result["database"] == "postgresql"
    for key in ("insert_s", "graph_s", "cold_start_s", "fast_path_s", "dashboard_s", "next_p95_ms"):
        assert result[key] > 0, key
    assert len(result["fast_path_runs"]) == 5 and all(t > 0 for t in result["fast_path_runs"])
    assert result["fast_path_s"] == sorted(result["fast_path_runs"])[2]
    assert result["peak_rss_mb"] > 50
    # the versions existed during the run: the cold start's and one per fast path, with their files
    assert result["versions"] == 6 and result["version_files_ok"]
    assert result["labels_total"] == 50 and result["answers_served"] + result["answers_bulk"] == 50
    assert result["next_count"] == 20 and result["next_p50_ms"] <= result["next_p95_ms"] <= result["next_max_ms"]
    # ... and are gone with the throwaway project, its files and its users
    assert result["kept"] is False
    assert not Project.objects.filter(pk=result["project_id"]).exists()
    assert not Item.objects.exists() and not Annotation.objects.exists() and not ModelVersion.objects.exists()
    assert not artifact_path(f"projects/{result['project_id']}").exists()
    assert get_user_model().objects.count() == users


@pytest.mark.django_db
def test_keep_leaves_the_project_and_its_versions(tmp_path):
    result = run(tmp_path, "--keep")
    project = Project.objects.get(pk=result["project_id"])
    assert result["kept"] is True
    assert Item.objects.filter(project=project).count() == 300
    versions = ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK)
    assert versions.count() == 6
    assert versions.filter(labels_used=50).exists()  # the last fast path saw every round's answers
    assert all(artifact_path(v.artifact_dir).joinpath("probs.npy").exists() for v in versions.exclude(labels_used=0))
    state = TrainerState.objects.get(project=project)
    assert state.current_version == versions.order_by("-number").first()
    assert state.owner.startswith("bench_scale:")  # held for the whole run: no trainer claims it
    assert QueueEntry.objects.filter(project=project).exists()
    # the rounds' answers and the 20 timed round trips
    assert Annotation.objects.filter(item__project=project).count() == 70
    assert Item.objects.filter(project=project, label_count=1, done=True).count() == 70
