"""`manage.py bench_bucket`: a tiny run against moto registers every object, then nothing on
the re-run, and refuses to run without --yes."""
import json

import pytest
from django.core.management import CommandError, call_command


def test_a_tiny_run_registers_everything_once(db, tmp_path, capsys):
    out = tmp_path / "bucket.json"
    call_command("bench_bucket", yes=True, objects=3, repeats=1, side=16, json_path=str(out))
    run = json.loads(out.read_text())["runs"][0]
    assert (run["registered"], run["rejected"], run["rerun_registered"]) == (3, 0, 0)
    assert "3 objects of 16x16 px" in capsys.readouterr().out


def test_it_needs_yes(db):
    with pytest.raises(CommandError, match="--yes"):
        call_command("bench_bucket", objects=3)
