"""PostgreSQL stopped and started again while ten simulated annotators label through the API
(`manage.py serve`, a private PostgreSQL 15 cluster): once with `pg_ctl stop -m fast` (clients
disconnected, a clean shutdown) and once with `-m immediate` (a crash: recovery from the WAL on
the next start), each followed by PG_OUTAGE_S seconds with no server.

While the database is away the server answers 503 with Retry-After (never a 500), the
annotators retry with the same idempotency keys (`annotator.management.loadclient`), and
afterwards every acknowledged answer is stored exactly once and no item was served twice.
Figures: test-artifacts/faults-postgres-restart.json, quoted in docs/reliability.md."""
import os
import threading
import time

import pytest

from annotator.management import loadclient
from tests.faults.conftest import Server, annotators_of, app_env, manage, soak_setup, write_figures

pytestmark = pytest.mark.slow

ANNOTATORS = 10
SECONDS = float(os.environ.get("PG_FAULT_SECONDS", "24"))
OUTAGE_S = float(os.environ.get("PG_OUTAGE_S", "3"))
RESTARTS = [("fast", 0.25), ("immediate", 0.6)]  # stop mode, when (fraction of SECONDS)


def _window(tally, start, end):
    return [ms for at, ms in zip(tally.acked_at, tally.latencies_ms) if start <= at <= end]


def test_postgres_restarts_lose_and_double_nothing(private_postgres, tmp_path):
    env = app_env(tmp_path / "data", private_postgres.url)
    manage(env, "migrate", "--noinput", "-v", "0")
    plan = soak_setup(env, tmp_path, annotators=ANNOTATORS, images=2500)
    server = Server(env, tmp_path / "serve.log")
    try:
        server.start()
        box = {}

        def label():
            box["tally"] = loadclient.run(server.url, plan["project"], plan["classes"], annotators_of(plan), SECONDS,
                                          drop=0.1, think=(0.05, 0.2), retry_for=60, seed=13)

        labeling = threading.Thread(target=label)
        started = time.monotonic()
        labeling.start()
        outages = []
        for mode, at in RESTARTS:
            time.sleep(max(0.0, started + at * SECONDS - time.monotonic()))
            down = time.monotonic()
            private_postgres.stop(mode)
            time.sleep(OUTAGE_S)
            private_postgres.start()
            outages.append({"mode": mode, "down": down, "up": time.monotonic()})
        labeling.join(SECONDS + 180)
        assert not labeling.is_alive(), "the annotators did not finish"
        tally = box["tally"]
        stored = loadclient.stored_answers(server.url, plan["owner_token"], plan["project"])
        log = server.output()
    finally:
        server.stop()

    checks = loadclient.verify(tally, stored)
    ends = [o["down"] for o in outages[1:]] + [float("inf")]
    for outage, next_down in zip(outages, ends):
        down, up = outage["down"], outage["up"]
        after = min(up + 10, next_down)  # until the next outage
        retried = [t for t in tally.retried_at if down <= t <= after]
        outage.update(
            seconds=round(up - down, 2),
            retries=len(retried),
            # from the stop to the last retry it caused: what the annotators waited through
            client_outage_s=round(max(retried, default=down) - down, 2),
            acked_in_next_5_s=sum(1 for t in tally.acked_at if up <= t <= up + 5),
            # answers acknowledged from the stop until a second after the start (their wait included)
            p95_ms_around=loadclient.percentiles(_window(tally, down, up + 1.0))["p95_ms"],
        )
    figures = {
        "annotators": ANNOTATORS, "seconds": SECONDS, "outage_s": OUTAGE_S, "drop": 0.1, **checks,
        "conflicts": tally.conflicts, "dropped_and_resent": tally.drops, "retries": dict(tally.retries),
        "errors": tally.errors[:10], **loadclient.percentiles(tally.latencies_ms),
        "outages": [{k: v for k, v in o.items() if k not in ("down", "up")} for o in outages],
    }
    write_figures("postgres-restart", figures)

    assert tally.errors == [], figures
    assert checks["acknowledged"] == checks["stored"] > 0, figures
    assert checks["lost"] == [] and checks["unacknowledged_stored"] == 0, figures
    assert checks["duplicates"] == 0 and checks["acknowledged_twice"] == 0, figures
    assert checks["served_twice"] == 0, figures
    # the outage was felt (clean 503s), and nothing but 503 came back as a server error
    assert tally.retries["http 503"] > 0, figures
    assert {why for why in tally.retries if why.startswith("http 5")} == {"http 503"}, figures
    assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
    # answers flowed again after each restart
    for outage in outages:
        assert outage["acked_in_next_5_s"] > 0, figures
