"""`manage.py profile_labeling --yes [--rounds 200] [--items 20000] [--json FILE]
[--cprofile FILE]`: where the time of one labeling request goes, in process.

On a throwaway project (annotator.management.benchproject, deleted afterwards) in the
configured database, one annotator runs `--rounds` times through the three hot endpoints
with Django's test client (the whole middleware stack, DRF, serializers, the database):

- `POST /api/projects/<id>/next/` (token),
- `POST /api/projects/<id>/annotations/` (token),
- `POST /projects/<id>/label/answer/` (the page's answer-and-next, signed in).

For each it reports per request: queries (CaptureQueriesContext), wall time, time inside
database calls (an execute wrapper: the round trips, the driver and the server's work), and
the inclusive time of each layer, measured by wrapping the layer's function: token
authentication, the project lookup (membership), request validation, the service
(`lease_next`, `submit_annotation`), serialization and the page's extras (progress counts,
item names). "framework" is the rest: middleware, URL routing, DRF's request handling,
rendering JSON. `--cprofile` also writes a cProfile dump of the same requests (slower).
A benchmark, not a test; nothing here runs under uvicorn (see `bench_serving` for that).
"""
import cProfile
import json
import statistics
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotator.management import benchproject


class Layers:
    """Inclusive seconds per layer, for the current request."""

    def __init__(self):
        self.seconds = {}
        self.db_s = 0.0

    def wrap(self, label, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started

        return timed

    def database(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_s += time.perf_counter() - started


def _patches(layers):
    """(target, label) of each layer's function, patched where its callers look it up."""
    from annotator.labeling import serializers as contract

    names = [
        ("annotator.accounts.tokens.token_user", "auth"),
        ("annotator.api.permissions.project_for", "project lookup"),
        ("annotator.pages.labeling.project_for", "project lookup"),
        ("annotator.api.leasing.lease_next", "service: lease_next"),
        ("annotator.labeling.answers.lease_next", "service: lease_next"),
        ("annotator.api.annotations.submit_annotation", "service: submit_annotation"),
        ("annotator.labeling.answers.submit_annotation", "service: submit_annotation"),
        ("annotator.pages.labeling._progress", "page extras"),
        ("annotator.pages.labeling._items_json", "page extras"),
    ]
    stack = ExitStack()
    for target, label in names:
        module, _, attr = target.rpartition(".")
        original = getattr(__import__(module, fromlist=[attr]), attr)
        stack.enter_context(mock.patch(target, layers.wrap(label, original)))
    for cls, method, label in [
        (contract.LeaseQuerySerializer, "is_valid", "validation"),
        (contract.AnswerSerializer, "is_valid", "validation"),
        (contract.LeasedItemSerializer, "to_representation", "serialization"),
        (contract.AnnotationSerializer, "to_representation", "serialization"),
    ]:
        stack.enter_context(mock.patch.object(cls, method, layers.wrap(label, getattr(cls, method))))
    return stack


class Command(BaseCommand):
    help = "Profile the labeling endpoints in process on a throwaway project (needs --yes)."

    def add_arguments(self, parser):
        parser.add_argument("--rounds", type=int, default=200, help="Requests per endpoint (default 200).")
        parser.add_argument("--items", type=int, default=20_000, help="Items in the pool (default 20000).")
        parser.add_argument("--warmup", type=int, default=5, help="Untimed rounds first (default 5).")
        parser.add_argument("--json", dest="json_path", help="Write the figures here too.")
        parser.add_argument("--cprofile", help="Also write a cProfile dump of the requests here.")
        parser.add_argument("--yes", action="store_true", help="Really write the throwaway project.")

    def handle(self, *args, rounds, items, warmup, json_path, cprofile, yes, **options):
        if not yes:
            raise CommandError(f"This writes a throwaway project with {items} items to the database "
                               f"{connection.settings_dict['NAME']} and deletes it afterwards; add --yes.")
        if rounds < 1 or warmup < 0 or items < 3 * (rounds + warmup) + 10:
            raise CommandError("Use --rounds >= 1, --warmup >= 0 and --items >= 3 x (rounds + warmup) + 10.")
        project, owner, people, _ = benchproject.create(items, 1, prefix="profile")
        try:
            result = self._run(project, people[0], rounds, warmup, cprofile)
        finally:
            benchproject.delete(project)
        result.update(database=connection.vendor, rounds=rounds, items=items)
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=1) + "\n")
        self._table(result)

    def _run(self, project, person, rounds, warmup, cprofile):
        from django.contrib.auth import get_user_model

        username, token = person
        api = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
        page = Client(HTTP_ACCEPT="application/json", HTTP_HOST="127.0.0.1")
        page.force_login(get_user_model().objects.get(username=username))
        base = f"/api/projects/{project.pk}"
        figures = {"next": [], "answer": [], "answer_and_next": []}
        profiler = cProfile.Profile() if cprofile else None
        layers = Layers()

        @contextmanager
        def measured(name):
            layers.seconds, layers.db_s = {}, 0.0
            with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(layers.database):
                started = time.perf_counter()
                if profiler:
                    profiler.enable()
                yield
                if profiler:
                    profiler.disable()
                wall = time.perf_counter() - started
            figures[name].append({"ms": wall * 1000, "queries": len(queries), "db_ms": layers.db_s * 1000,
                                  **{k: v * 1000 for k, v in layers.seconds.items()}})

        def key():
            return uuid.uuid4().hex

        with _patches(layers):
            for i in range(warmup + rounds):  # warm-up rounds first (imports, caches, connections)
                with measured("next"):
                    lease = api.post(f"{base}/next/", {}, content_type="application/json")
                assert lease.status_code == 200, lease.content[:300]
                item = lease.json()["id"]
                with measured("answer"):
                    reply = api.post(f"{base}/annotations/", {"item": item, "label": "bar", "idempotency_key": key()},
                                     content_type="application/json")
                assert reply.status_code == 201, reply.content[:300]
                # The page: lease an item, then answer it and get the next one (which the API
                # answers, so that every /next/ above leases a new item, as annotators do).
                held = page.post(f"/projects/{project.pk}/label/next/", {}).json()["next"]["id"]
                with measured("answer_and_next"):
                    reply = page.post(f"/projects/{project.pk}/label/answer/",
                                      {"item": held, "label": "bar", "idempotency_key": key()})
                assert reply.status_code == 200, reply.content[:300]
                api.post(f"{base}/annotations/", {"item": reply.json()["next"]["id"], "label": "bar",
                                                  "idempotency_key": key()}, content_type="application/json")
                if i == warmup - 1:
                    for rows in figures.values():
                        rows.clear()
        if profiler:
            profiler.dump_stats(cprofile)
        return {name: _summary(rows) for name, rows in figures.items()}

    def _table(self, result):
        labels = sorted({k for name in ("next", "answer", "answer_and_next") for k in result[name]["layers_ms"]})
        self.stdout.write(f"{'per request (median)':28} {'next':>10} {'answer':>10} {'answer+next':>12}")
        rows = [("queries", "queries"), ("wall ms", "ms"), ("database ms", "db_ms")]
        for title, field in rows:
            cells = [result[n][field] for n in ("next", "answer", "answer_and_next")]
            self.stdout.write(f"{title:28} {cells[0]:>10} {cells[1]:>10} {cells[2]:>12}")
        for label in labels:
            cells = [result[n]["layers_ms"].get(label, "") for n in ("next", "answer", "answer_and_next")]
            self.stdout.write(f"{label:28} {cells[0]:>10} {cells[1]:>10} {cells[2]:>12}")


def _summary(rows):
    """Medians per request; `framework` is wall time outside the measured layers."""
    def median(field):
        return round(statistics.median(r.get(field, 0.0) for r in rows), 2)

    labels = sorted({k for r in rows for k in r} - {"ms", "queries", "db_ms"})
    layers = {label: median(label) for label in labels}
    framework = [r["ms"] - sum(r.get(label, 0.0) for label in labels) for r in rows]  # the layers do not nest
    layers["framework (the rest)"] = round(statistics.median(framework), 2)
    return {"queries": statistics.median(r["queries"] for r in rows), "ms": median("ms"), "db_ms": median("db_ms"),
            "p95_ms": round(sorted(r["ms"] for r in rows)[int(0.95 * (len(rows) - 1))], 2), "layers_ms": layers}
