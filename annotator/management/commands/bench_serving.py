"""`manage.py bench_serving --yes`: next + answer latency and throughput against real
`manage.py serve` processes, several server variants side by side in one run.

    python manage.py bench_serving --yes --variant before=/tmp/base:1 --variant after=.:1 \\
        --variant after-2w=.:2 --annotators 10,50,200 --modes flat,paced --seconds 20 --repeats 3 \\
        --json serving.json

A variant is NAME=DIR:WORKERS[:KEY=VALUE,...]: `manage.py serve` is run from the checkout
DIR (so an older commit can be compared with this one on the same machine at the same time)
with WORKERS uvicorn worker processes and the given environment variables (e.g.
`DB_POOL_SIZE=8`; `CLIENT=combined` is the client's, not the server's: its annotators then
answer with `answer-and-next/`, one request per answer, which DIR must serve), `--trainer none` (the throwaway projects' trainer lease is held by
the benchmark, so a trainer would leave them alone anyway), on a free port, with this
process's environment (the same DATABASE_URL and REDIS_URL). Each repeat starts every
variant in turn (the order rotates between repeats), and for each annotator count and mode
runs `annotator.management.loadclient` (the client of `manage.py soak`) for --warmup
(default 3 s, not counted: a fresh server opens its database connections and fills its
caches) and then --seconds (measured) on a fresh throwaway project (`benchproject`), then reads every answer back and checks the
invariants (acknowledged == stored, no duplicate, no item served twice). Modes: `flat` (each
annotator answers as fast as it can) and `paced` (1-3 s between answers, uniform; each
annotator's first request comes after a uniform 0-3 s, so that a run measures the steady
state, not one burst of N simultaneous first requests: loadclient.run says why).

Each run records the machine's load average when it started (the machine may be shared: the
figures of one run are only comparable with the runs beside them). The table gives mean and
standard deviation over the repeats. A benchmark, not a test.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.management import benchproject, loadclient

MODES = {"flat": (0.0, 0.0), "paced": (1.0, 3.0)}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_variant(text):
    """NAME=DIR:WORKERS[:KEY=VALUE,...] -> (name, Path, workers, {KEY: VALUE}): the
    environment variables are the server's on top of this process's."""
    try:
        name, rest = text.split("=", 1)
        folder, workers, *extra = rest.split(":")
        workers = int(workers)
        env = dict(pair.split("=", 1) for pair in extra[0].split(",")) if extra else {}
    except ValueError:
        raise CommandError(f"--variant {text!r}: write NAME=DIR:WORKERS[:KEY=VALUE,...], e.g. after=.:2.") from None
    folder = Path(folder).resolve()
    if not name or workers < 1 or len(extra) > 1 or not (folder / "manage.py").exists():
        raise CommandError(f"--variant {text!r}: needs a name, WORKERS >= 1 and a DIR with manage.py.")
    if env.get("CLIENT", "api") not in ("api", "combined"):
        raise CommandError(f"--variant {text!r}: CLIENT is api (next/ + annotations/) or combined (answer-and-next/).")
    return name, folder, workers, env


class Server:
    """`manage.py serve` of one variant, on a free port, until stopped."""

    def __init__(self, folder, workers, env, log):
        env = {k: v for k, v in env.items() if k != "CLIENT"}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "manage.py", "serve", "--port", str(self.port), "--trainer", "none",
                   "--log-level", "warning"] + (["--workers", str(workers)] if workers > 1 else [])
        self.process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **env}, start_new_session=True)
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise CommandError(f"The server in {folder} exited with {self.process.returncode}; see {log.name}.")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise CommandError(f"The server in {folder} did not answer /healthz within 90 s; see {log.name}.")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def one_run(url, annotators, mode, seconds, items, seed, combined=False, warmup=0.0):
    """A fresh project, the load for `warmup` + `seconds`, the check; the figures as a dict.
    Throughput and latencies count the answers acknowledged after the warm-up (a server's
    first seconds open its database connections and fill its caches); the check covers
    every answer, those of the warm-up included."""
    project, _owner, people, owner_token = benchproject.create(items, annotators, prefix="serving", seed=seed)
    try:
        load = os.getloadavg()[0]
        started = time.monotonic()
        tally = loadclient.run(url, project.pk, benchproject.CLASSES, people, warmup + seconds, think=MODES[mode],
                               retry_for=30.0, seed=seed, stagger=True, combined=combined)
        ended = time.monotonic()
        checks = loadclient.verify(tally, loadclient.stored_answers(url, owner_token, project.pk))
    finally:
        benchproject.delete(project)
    violations = (len(checks["lost"]) + checks["unacknowledged_stored"] + checks["duplicates"]
                  + checks["acknowledged_twice"] + checks["served_twice"]
                  + abs(checks["acknowledged"] - checks["stored"]) + len(tally.errors))
    measured, elapsed = after_warmup(tally, started + warmup, ended)
    return {"annotators": annotators, "mode": mode, "seconds": round(elapsed, 1), "warmup_s": warmup,
            "load_avg_1m": round(load, 2),
            "answers_per_s": round(len(measured) / elapsed, 2), **loadclient.percentiles(measured),
            "acknowledged": checks["acknowledged"], "stored": checks["stored"], "violations": violations,
            "retries": dict(tally.retries), "errors": tally.errors[:5]}


def after_warmup(tally, measured_from, ended):
    """(latencies in ms of the answers acknowledged at or after `measured_from`, the seconds
    from then to `ended`): the measured part of a run (times are time.monotonic())."""
    return [ms for ms, at in zip(tally.latencies_ms, tally.acked_at) if at >= measured_from], ended - measured_from


def summarize(runs):
    """Per (variant, annotators, mode): mean and standard deviation over the repeats."""
    groups = {}
    for run in runs:
        groups.setdefault((run["variant"], run["annotators"], run["mode"]), []).append(run)
    rows = []
    for (variant, annotators, mode), group in groups.items():
        row = {"variant": variant, "annotators": annotators, "mode": mode, "runs": len(group),
               "violations": sum(r["violations"] for r in group)}
        for field in ("answers_per_s", "p50_ms", "p95_ms", "p99_ms", "load_avg_1m"):
            values = [r[field] for r in group if r[field] is not None]
            row[field] = round(statistics.mean(values), 1) if values else None
            row[field + "_sd"] = round(statistics.stdev(values), 1) if len(values) > 1 else 0.0
        rows.append(row)
    return sorted(rows, key=lambda r: (r["mode"], r["annotators"], r["variant"]))


def table(rows):
    lines = ["| mode | annotators | variant | answers/s | p50 ms | p95 ms | p99 ms | load (1 min) | runs | violations |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    def cell(r, field):
        return "-" if r[field] is None else f"{r[field]:,} ± {r[field + '_sd']:,}"

    for r in rows:
        lines.append(f"| {r['mode']} | {r['annotators']} | {r['variant']} | {cell(r, 'answers_per_s')} | "
                     f"{cell(r, 'p50_ms')} | {cell(r, 'p95_ms')} | {cell(r, 'p99_ms')} | {r['load_avg_1m']} | {r['runs']} | "
                     f"{r['violations']} |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Latency and throughput of next + answer against real servers, variants side by side (needs --yes)."

    def add_arguments(self, parser):
        parser.add_argument("--variant", action="append", required=True, help="NAME=DIR:WORKERS (repeatable).")
        parser.add_argument("--annotators", default="10,50,200", help="Comma-separated counts (default 10,50,200).")
        parser.add_argument("--modes", default="flat,paced", help="flat, paced or both (default both).")
        parser.add_argument("--seconds", type=float, default=20.0, help="Load per run, measured (default 20).")
        parser.add_argument("--warmup", type=float, default=3.0,
                            help="Load before the measured seconds of each run, not counted (default 3; 0: none).")
        parser.add_argument("--repeats", type=int, default=3, help="Repeats of the whole matrix (default 3).")
        parser.add_argument("--items", type=int, default=10_000, help="Items per throwaway project (default 10000).")
        parser.add_argument("--json", dest="json_path", help="Write every run and the summary here.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--yes", action="store_true", help="Really write throwaway projects to the database.")

    def handle(self, *args, variant, annotators, modes, seconds, warmup, repeats, items, json_path, seed, yes,
               **options):
        if not yes:
            raise CommandError("This starts servers and writes throwaway projects to the configured database "
                               "(each deleted after its run); add --yes.")
        variants = [parse_variant(v) for v in variant]
        try:
            counts = [int(n) for n in annotators.split(",")]
        except ValueError:
            raise CommandError("--annotators takes comma-separated numbers, e.g. 10,50,200.") from None
        mode_list = [m.strip() for m in modes.split(",")]
        if any(m not in MODES for m in mode_list) or min(counts) < 1 or repeats < 1 or seconds <= 0 or warmup < 0:
            raise CommandError("Use --modes from flat,paced, counts >= 1, --repeats >= 1, --seconds > 0 and "
                               "--warmup >= 0.")
        runs = []
        logs = Path(tempfile.mkdtemp(prefix="bench-serving-"))
        self.stdout.write(f"Server logs in {logs}")
        for repeat in range(repeats):
            order = variants[repeat % len(variants):] + variants[:repeat % len(variants)]
            for name, folder, workers, env in order:
                with open(logs / f"{name}-{repeat}.log", "w") as log:
                    server = Server(folder, workers, env, log)
                    try:
                        for count in counts:
                            for mode in mode_list:
                                run = one_run(server.url, count, mode, seconds, items, seed + repeat,
                                              combined=env.get("CLIENT") == "combined", warmup=warmup)
                                run.update(variant=name, workers=workers, repeat=repeat)
                                runs.append(run)
                                self.stdout.write(json.dumps(run))
                    finally:
                        server.stop()
        rows = summarize(runs)
        if json_path:
            Path(json_path).write_text(json.dumps({"runs": runs, "summary": rows}, indent=1) + "\n")
        self.stdout.write(table(rows))
        if any(r["violations"] for r in runs):
            raise CommandError("An invariant failed in at least one run (see violations above).")
