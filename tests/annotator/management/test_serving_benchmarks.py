"""The serving benchmarks' own pieces: `profile_labeling` on a tiny throwaway project, and
`bench_serving`'s variant parsing and summary (its load runs are benchmarks, not tests)."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotator.management import benchproject, loadclient
from annotator.management.commands.bench_serving import after_warmup, parse_variant, summarize, table
from annotator.management.loadclient import Tally
from annotator.models import Annotation, Item, Project


def test_profile_labeling_needs_yes(db):
    with pytest.raises(CommandError, match="--yes"):
        call_command("profile_labeling", "--rounds", "1", "--items", "20")


def test_profile_labeling_measures_each_endpoint_and_cleans_up(db, tmp_path):
    users = get_user_model().objects.count()
    out = tmp_path / "profile.json"
    call_command("profile_labeling", "--yes", "--rounds", "2", "--warmup", "0", "--items", "30", "--json", str(out))
    figures = json.loads(out.read_text())
    for endpoint in ("next", "answer", "answer_and_next"):
        assert figures[endpoint]["queries"] > 0 and figures[endpoint]["ms"] > 0
        assert figures[endpoint]["layers_ms"]["project lookup"] > 0
    assert "service: lease_next" in figures["next"]["layers_ms"]
    assert "service: submit_annotation" in figures["answer"]["layers_ms"]
    assert (Project.objects.count(), Item.objects.count(), Annotation.objects.count()) == (0, 0, 0)
    assert get_user_model().objects.count() == users


def test_the_throwaway_project_has_its_annotators_and_items(db):
    project, owner, people, owner_token = benchproject.create(12, 3, prefix="t")
    assert project.items.count() == 12 and len(people) == 3 and owner_token
    assert set(project.memberships.values_list("role", flat=True)) == {"owner", "annotator"}
    benchproject.delete(project)
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not get_user_model().objects.filter(username__startswith="t-").exists()


def test_a_variant_is_name_dir_and_workers(tmp_path):
    (tmp_path / "manage.py").write_text("")
    assert parse_variant(f"old={tmp_path}:2") == ("old", tmp_path, 2, {})
    assert parse_variant(f"pool={tmp_path}:1:DB_POOL_SIZE=8,X=a=b") == ("pool", tmp_path, 1,
                                                                       {"DB_POOL_SIZE": "8", "X": "a=b"})
    for bad in ("old", f"old={tmp_path}", f"old={tmp_path}:0", f"old={tmp_path / 'nowhere'}:1", f"={tmp_path}:1",
                f"old={tmp_path}:1:NOVALUE", f"old={tmp_path}:1:A=1:B=2"):
        with pytest.raises(CommandError):
            parse_variant(bad)


def test_the_summary_is_mean_and_spread_over_repeats():
    runs = [{"variant": "a", "annotators": 10, "mode": "flat", "answers_per_s": v, "p50_ms": 10.0, "p95_ms": p95,
             "p99_ms": None, "load_avg_1m": 1.0, "violations": 0} for v, p95 in ((10.0, 20.0), (20.0, 40.0))]
    [row] = summarize(runs)
    assert (row["answers_per_s"], row["answers_per_s_sd"], row["p95_ms"], row["runs"]) == (15.0, 7.1, 30.0, 2)
    assert row["p99_ms"] is None
    assert "| flat | 10 | a | 15.0 ± 7.1 | 10.0 ± 0.0 | 30.0 ± 14.1 | - |" in table([row])


def _fake_session(monkeypatch):
    """loadclient's annotators against a fake server that serves 204 (nothing left) at once:
    what each one slept before its first request."""
    slept, calls = [], []
    monkeypatch.setattr(loadclient.time, "sleep", slept.append)
    monkeypatch.setattr(loadclient.Client, "call", lambda self, method, path, body=None: calls.append(path) or (204, None))
    return slept, calls


@pytest.mark.parametrize("stagger", [False, True])
def test_paced_annotators_start_spread_over_one_think_time_when_staggered(monkeypatch, stagger):
    slept, calls = _fake_session(monkeypatch)
    people = [(f"a{i}", "token") for i in range(40)]
    loadclient.run("http://127.0.0.1:9", 1, ["x"], people, seconds=60, think=(1.0, 3.0), seed=3, stagger=stagger)
    assert len(calls) == 40  # each asked once, got "nothing left" and stopped
    if stagger:
        assert len(slept) == 40 and all(0 <= s <= 3 for s in slept) and max(slept) - min(slept) > 1.5
    else:
        assert slept == []


def test_flat_annotators_never_wait_even_when_staggered(monkeypatch):
    slept, _calls = _fake_session(monkeypatch)
    loadclient.run("http://127.0.0.1:9", 1, ["x"], [("a", "t")], seconds=60, think=(0.0, 0.0), stagger=True)
    assert slept == []


def test_a_combined_annotator_asks_next_once_then_answers_with_the_next_item(monkeypatch):
    left, calls = [1, 2, 3], []

    def call(self, method, path, body=None):
        calls.append(path.rsplit("/", 2)[-2])
        if path.endswith("/next/"):
            return 200, {"id": left[0], "suggestion": None}
        left.remove(body["item"])
        return 201, {"annotation": {"item": body["item"]}, "next": {"id": left[0], "suggestion": None} if left else None}

    monkeypatch.setattr(loadclient.Client, "call", call)
    tally = loadclient.run("http://127.0.0.1:9", 1, ["x"], [("a", "t")], seconds=60, combined=True)
    assert calls == ["next", "answer-and-next", "answer-and-next", "answer-and-next"]
    assert tally.served == [("a", 1), ("a", 2), ("a", 3)] and len(tally.acked) == 3 and not tally.errors


def test_the_client_of_a_variant_is_api_or_combined(tmp_path):
    (tmp_path / "manage.py").write_text("")
    assert parse_variant(f"one={tmp_path}:2:CLIENT=combined")[3] == {"CLIENT": "combined"}
    with pytest.raises(CommandError, match="CLIENT"):
        parse_variant(f"one={tmp_path}:2:CLIENT=grpc")


def test_the_warmup_is_not_measured():
    tally = Tally(latencies_ms=[900.0, 800.0, 20.0, 30.0], acked_at=[100.5, 102.9, 103.0, 110.0])
    latencies, seconds = after_warmup(tally, 103.0, 113.0)
    assert latencies == [20.0, 30.0] and seconds == 10.0
