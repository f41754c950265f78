"""`manage.py bench_scale --yes --items N --dim D --classes C --json FILE [--labels L] [--seed S]
[--keep]`: how the model loop and the labeling path scale with the pool. A benchmark, not a test.

Creates a throwaway project in the configured database (`create_project`, then bulk-inserted
items with dummy image names: no image file is opened on these paths) and synthetic
embeddings, N x D float32 unit vectors drawn around C Gaussian cluster centres (seeded), as
a frozen pretrained backbone would give. Then it runs the loop's real code on them, as a
trainer does for a backbone project once the pool is embedded:

1. `EmbeddingLearner(new_config(C, 224, 3, device), emb)`: the kNN graph (graph_s);
2. the first fast path with no label (`results.fast_path`, whose ranking is
   `learner.rank(batch, labels)`: the spectral cold start; cold_start_s), written with
   `write_probabilities` + `commit_version` (the first queue);
3. 5 rounds of: L new answers by a simulated annotator who answers the true cluster (the
   first `query_batch_size` through `lease_next` + `submit_annotation`, which serves the
   model's queue, the rest bulk-created with `label_count`/`done` as `submit_annotation`
   sets them), `arrays.label_arrays`, then the fast path timed as `ProjectLoop.fast` runs
   it: `held_rows`, `results.fast_path(..., rerank=True)`, `write_probabilities`,
   `commit_version` (fast_path_s: the median of the 5);
4. `dashboard_summary(project)` (median of 3 after a first call);
5. 200 `lease_next` + `submit_annotation` round trips of the simulated annotator
   (next_p95_ms). Answers are part of it: they change what the next lease sees, as in real
   labeling, and nothing measured afterwards depends on them. No trainer runs meanwhile, so
   once the queue's batch is answered, items come in the import order (as with no trainer).
   The project keeps the default audit share (0.1), so about 1 lease in 10 is a uniform
   random draw among the available items.

The run holds the project's trainer lease from the start (a trainer sharing the database
leaves the project alone). It writes the figures to --json and prints a table, then deletes
the project, its files and its users unless --keep. On PostgreSQL the items are ANALYZEd
after the insert, as autovacuum would do for a real project.
"""
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from tqdm import tqdm

from annotator.dashboard.summary import dashboard_summary
from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop.predictions import artifact_path
from annotator.models import Annotation, Item, Lease, ModelVersion, QueueEntry, Role, TrainerState
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

BATCH = 5000  # rows per bulk insert
EMBED_CHUNK = 50_000  # embedding rows generated at a time
ROUNDS = 5
LEASE_HOURS = 12  # the trainer lease held for the run


def _percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def _peak_rss_mb():
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def _database_version():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
        else:
            return ""
        return str(cursor.fetchone()[0])


def synthetic_embeddings(n, dim, classes, seed, progress=True):
    """(emb (n, dim) float32 unit rows, truth (n,) int64): Gaussian clusters around `classes`
    random unit centres, noise of about the centres' norm (same-cluster cosine about 0.5),
    class sizes mildly unequal. Generated in chunks, so memory is about the output."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(classes, 5.0))
    truth = rng.choice(classes, size=n, p=weights).astype(np.int64)
    emb = np.empty((n, dim), dtype=np.float32)
    scale = np.float32(1.0 / np.sqrt(dim))
    for start in tqdm(range(0, n, EMBED_CHUNK), desc="embeddings", unit="chunk", disable=not progress):
        stop = min(n, start + EMBED_CHUNK)
        block = centres[truth[start:stop]] + scale * rng.standard_normal((stop - start, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        emb[start:stop] = block
    return emb, truth


class Command(BaseCommand):
    help = ("Time the model loop (graph, cold start, fast path) and the labeling path on a throwaway project "
            "with synthetic embeddings (needs --yes).")

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=10_000, help="Images in the pool (default 10000).")
        parser.add_argument("--dim", type=int, default=384, help="Embedding dimensions (default 384).")
        parser.add_argument("--classes", type=int, default=10, help="Classes and clusters (default 10).")
        parser.add_argument("--labels", type=int, default=50,
                            help="New answers before each of the 5 timed fast paths (default 50).")
        parser.add_argument("--next", type=int, default=200, dest="next_trips",
                            help="lease_next + submit_annotation round trips timed (default 200).")
        parser.add_argument("--json", required=True, dest="json_path", help="Write the figures to this file.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="cpu", help="torch device of the learner (default cpu).")
        parser.add_argument("--keep", action="store_true", help="Keep the throwaway project afterwards.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")
        parser.add_argument("--yes", action="store_true", help="Really write the throwaway project to the database.")

    def handle(self, *args, items, dim, classes, labels, next_trips, json_path, seed, device, keep, no_progress,
               yes, **options):
        database = connection.settings_dict["NAME"]
        if not yes:
            raise CommandError(
                f"This writes a throwaway project with {items} items to the database {database} "
                f"({connection.vendor}) and {'keeps it' if keep else 'deletes it afterwards'}. "
                "Run again with --yes to go ahead."
            )
        if items < 100 or dim < 2 or classes < 2 or labels < 1 or next_trips < 0:
            raise CommandError("Use --items >= 100, --dim >= 2, --classes >= 2, --labels >= 1 and --next >= 0.")
        from annotator.modelloop import bridge  # imports torch and mlcore: only when it runs

        try:
            self.device = bridge.resolve_device(device)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.progress = not no_progress
        self.trainer = f"bench_scale:{socket.gethostname()}:{os.getpid()}"
        self.seed = seed
        out = Path(json_path)
        token = secrets.token_hex(3)
        result = {"items": items, "dim": dim, "classes": classes, "labels_per_round": labels, "seed": seed,
                  "database": connection.vendor, "database_version": _database_version(),
                  "device": str(self.device)}
        started = time.perf_counter()
        owner = annotator = project = None
        try:
            owner, annotator, project = self._create(token, classes)
            result["project_id"] = project.pk
            self._run(project, annotator, token, items, dim, classes, labels, next_trips, result)
        finally:
            result["peak_rss_mb"] = _peak_rss_mb()  # before the clean-up's own allocations
            if project is not None and not keep:
                t = time.perf_counter()
                self._delete(project, [u for u in (owner, annotator) if u is not None])
                result["cleanup_s"] = round(time.perf_counter() - t, 3)
                result["kept"] = False
            elif project is not None:
                result["kept"] = True
        result["wall_s"] = round(time.perf_counter() - started, 3)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        self._table(result)
        self.stdout.write(f"Wrote {out}.")

    # --- the throwaway project ----------------------------------------------------------

    def _create(self, token, classes):
        User = get_user_model()
        owner = User.objects.create_user(f"bench-scale-{token}-owner")
        annotator = User.objects.create_user(f"bench-scale-{token}-annotator")
        names = [f"class{j:02d}" for j in range(classes)]
        project = create_project(owner, check_limits=False, name=f"Scale benchmark {token}", classes=names)
        add_member(project, annotator.get_username(), Role.ANNOTATOR)
        # Own the project's trainer lease before it has items, as `Trainer.claim` does, so a
        # trainer running on the same database never claims the throwaway project.
        now = timezone.now()
        TrainerState.objects.create(project=project, owner=self.trainer, heartbeat_at=now,
                                    lease_expires_at=now + timedelta(hours=LEASE_HOURS))
        return owner, annotator, project

    def _insert_items(self, project, token, n, rng):
        rows = (
            Item(project=project, image=f"bench-scale/{token}/{i}.png", content_hash=f"{token}{i:058x}",
                 width=224, height=224, pool_index=i, priority=float(p))
            for i, p in enumerate(rng.random(n))
        )
        with tqdm(total=n, desc="insert items", unit="row", disable=not self.progress) as bar:
            batch = []
            for item in rows:
                batch.append(item)
                if len(batch) == BATCH:
                    Item.objects.bulk_create(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                Item.objects.bulk_create(batch)
                bar.update(len(batch))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE annotator_item")

    def _delete(self, project, users):
        """Answers first (they protect the classes), then the items in pk ranges (bounded
        memory: Django's cascade loads the rows it deletes), the project, files, users."""
        shutil.rmtree(artifact_path(f"projects/{project.pk}"), ignore_errors=True)
        Lease.objects.filter(project=project).delete()
        Annotation.objects.filter(item__project=project).delete()
        QueueEntry.objects.filter(project=project).delete()
        TrainerState.objects.filter(project=project).delete()
        ModelVersion.objects.filter(project=project).delete()
        ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
        step = 20_000
        for start in tqdm(range(0, len(ids), step), desc="delete items", unit="chunk", disable=not self.progress):
            chunk = ids[start:start + step]
            Item.objects.filter(project=project, pk__gte=chunk[0], pk__lte=chunk[-1]).delete()
        project.delete()
        get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()

    # --- the run ------------------------------------------------------------------------------

    def _heartbeat(self, project):
        now = timezone.now()
        TrainerState.objects.filter(project=project, owner=self.trainer).update(
            heartbeat_at=now, lease_expires_at=now + timedelta(hours=LEASE_HOURS))

    def _run(self, project, annotator, token, n, dim, classes, per_round, next_trips, result):
        from annotator.modelloop import arrays, bridge, results
        from mlcore.embedding_learner import EmbeddingLearner

        rng = np.random.default_rng(self.seed)
        t = time.perf_counter()
        self._insert_items(project, token, n, rng)
        result["insert_s"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        emb, truth = synthetic_embeddings(n, dim, classes, self.seed, self.progress)
        result["embeddings_s"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        item_ids, pool_index, _paths = arrays.pool_rows(project)
        class_ids, class_names = arrays.ordered_class_ids(project)
        result["pool_rows_s"] = round(time.perf_counter() - t, 3)
        if len(item_ids) != n:
            raise CommandError(f"Expected {n} items in the pool, found {len(item_ids)}.")

        self._step("kNN graph (EmbeddingLearner)")
        t = time.perf_counter()
        cfg = bridge.new_config(classes, 224, 3, self.device)
        learner = EmbeddingLearner(cfg, emb, self.device)
        result["graph_s"] = round(time.perf_counter() - t, 3)
        del emb  # the learner keeps its own unit copy
        model = bridge.ProjectModel(project.pk, learner, item_ids, pool_index, None, 224, 3, class_ids, class_names)
        self._heartbeat(project)

        self._step("cold start")
        project.refresh_from_db()
        batch = max(1, project.query_batch_size)
        labels, soft = arrays.label_arrays(project, pool_index, class_ids)
        t = time.perf_counter()
        probs, queue, durations, metrics, heldout = results.fast_path(
            project, model, labels, soft, project.strategy, batch, rerank=True)
        result["cold_start_s"] = round(time.perf_counter() - t, 3)
        folder = results.write_probabilities(project, model, probs, labels, heldout)
        results.commit_version(project, self.trainer, kind=ModelVersion.Kind.FAST, model=model, labels=labels,
                               durations=durations, metrics=metrics, artifact_dir=folder, queue=queue,
                               strategy=project.strategy, generation=project.model_generation)

        runs, label_reads, details, served_total, bulk_total = [], [], [], 0, 0
        for round_no in tqdm(range(ROUNDS), desc="fast paths", unit="round", disable=not self.progress):
            served, bulk = self._answer(project, annotator, labels, truth, pool_index, item_ids, class_names,
                                        per_round, batch, rng, round_no)
            served_total, bulk_total = served_total + served, bulk_total + bulk
            self._heartbeat(project)
            t = time.perf_counter()
            labels, soft = arrays.label_arrays(project, pool_index, class_ids)
            label_reads.append(round(time.perf_counter() - t, 4))
            # ProjectLoop.fast, without the live events and the pruning of old files
            t0 = time.perf_counter()
            held = results.held_rows(project, model)
            probs, queue, durations, metrics, heldout = results.fast_path(
                project, model, labels, soft, project.strategy, batch, rerank=True, held=held)
            folder = results.write_probabilities(project, model, probs, labels, heldout)
            durations["total_s"] = round(time.perf_counter() - t0, 4)
            version = results.commit_version(
                project, self.trainer, kind=ModelVersion.Kind.FAST, model=model, labels=labels,
                durations=durations, metrics=metrics, artifact_dir=folder, queue=queue,
                strategy=project.strategy, generation=project.model_generation)
            runs.append(round(time.perf_counter() - t0, 4))
            details.append({"labels": version.labels_used, **durations,
                            "cv_accuracy": metrics.get("cv_accuracy")})
        result.update(
            fast_path_s=round(statistics.median(runs), 4), fast_path_runs=runs, fast_path_detail=details,
            label_arrays_s=label_reads, answers_served=served_total, answers_bulk=bulk_total,
            labels_total=int((labels >= 0).sum()),
            pool_accuracy=round(float((probs.argmax(1) == truth).mean()), 4) if probs is not None else None,
        )
        ok = ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK)
        result["versions"] = ok.count()
        result["version_files_ok"] = all(
            artifact_path(d).is_dir() for d in ok.values_list("artifact_dir", flat=True))

        self._step("dashboard")
        dashboard_summary(project)  # the first call reads the version's arrays
        times = []
        for _ in range(3):
            t = time.perf_counter()
            dashboard_summary(project)
            times.append(time.perf_counter() - t)
        result["dashboard_s"] = round(statistics.median(times), 4)

        trips, audits = self._round_trips(project, annotator, truth, pool_index, class_names, next_trips)
        result.update(next_count=len(trips), next_audits=audits,
                      next_p50_ms=round(_percentile(trips, 50), 2) if trips else None,
                      next_p95_ms=round(_percentile(trips, 95), 2) if trips else None,
                      next_max_ms=round(max(trips), 2) if trips else None,
                      next_includes_answer=True)

    def _answer(self, project, annotator, labels, truth, pool_index, item_ids, class_names, per_round, batch, rng,
                round_no):
        """`per_round` new answers with the true class: the model's batch through the real
        services (lease_next serves the queue), the rest bulk-created the way
        submit_annotation writes them (Annotation row, label_count + 1, done)."""
        served = 0
        for k in range(min(batch, per_round)):
            lease = lease_next(project, annotator)
            if lease is None:
                break
            row = int(np.searchsorted(pool_index, lease.item.pool_index))
            submit_annotation(project, annotator, item_id=lease.item_id, label=class_names[truth[row]],
                              idempotency_key=f"bench-r{round_no}-s{k}", duration_ms=1500)
            served += 1
        taken = list(Annotation.objects.filter(item__project=project).values_list("item_id", flat=True))
        taken += list(Lease.objects.filter(project=project).values_list("item_id", flat=True))
        open_rows = np.where((labels < 0) & ~np.isin(item_ids, np.array(taken, dtype=np.int64)))[0]
        rows = rng.choice(open_rows, size=min(per_round - served, len(open_rows)), replace=False)
        if len(rows) == 0:
            return served, 0
        classes = {c.name: c for c in project.ordered_classes()}
        Annotation.objects.bulk_create(
            Annotation(item_id=int(item_ids[r]), annotator=annotator, label=classes[class_names[truth[r]]],
                       idempotency_key=f"bench-r{round_no}-b{i}", duration_ms=1500)
            for i, r in enumerate(rows))
        ids = [int(item_ids[r]) for r in rows]
        Item.objects.filter(pk__in=ids).update(label_count=1, done=project.annotations_per_item <= 1)
        return served, len(rows)

    def _round_trips(self, project, annotator, truth, pool_index, class_names, count):
        """lease_next + submit_annotation, timed together, like `manage.py latency` without HTTP."""
        import random

        random.seed(self.seed)  # the audit draws of lease_next
        trips, audits = [], 0
        for k in tqdm(range(count), desc="next + answer", unit="trip", disable=not self.progress):
            t = time.perf_counter()
            lease = lease_next(project, annotator)
            if lease is None:
                break
            row = int(np.searchsorted(pool_index, lease.item.pool_index))
            submit_annotation(project, annotator, item_id=lease.item_id, label=class_names[truth[row]],
                              idempotency_key=f"bench-next-{k}", duration_ms=1500)
            trips.append((time.perf_counter() - t) * 1000)
            audits += bool(lease.is_audit)
        return trips, audits

    # --- output ---------------------------------------------------------------------------------

    def _step(self, name):
        if self.progress:
            self.stderr.write(f"[bench_scale] {name} ...")

    def _table(self, r):
        def fmt(value, unit):
            return "-" if value is None else f"{value:,.3f} {unit}" if isinstance(value, float) else f"{value} {unit}"

        rows = [
            ("items x dim, classes", f"{r['items']:,} x {r['dim']}, {r['classes']}"),
            ("database", f"{r['database']} {r.get('database_version', '')}"),
            ("insert items", fmt(r.get("insert_s"), "s")),
            ("kNN graph", fmt(r.get("graph_s"), "s")),
            ("cold start (rank)", fmt(r.get("cold_start_s"), "s")),
            ("fast path, median of 5", fmt(r.get("fast_path_s"), "s")),
            ("fast path runs", ", ".join(f"{x:.3f}" for x in r.get("fast_path_runs", [])) + " s"),
            ("dashboard summary", fmt(r.get("dashboard_s"), "s")),
            ("next + answer p50 / p95", f"{fmt(r.get('next_p50_ms'), 'ms')} / {fmt(r.get('next_p95_ms'), 'ms')}"),
            ("peak RSS", fmt(r.get("peak_rss_mb"), "MB")),
            ("versions written", str(r.get("versions", "-"))),
            ("wall", fmt(r.get("wall_s"), "s")),
        ]
        width = max(len(name) for name, _ in rows)
        self.stdout.write("")
        for name, value in rows:
            self.stdout.write(f"{name:<{width}}  {value}")
        self.stdout.write("")

