"""`manage.py bench_dashboard --yes [--items 100000] [--annotations 60000]`: how fast the
project dashboard is on a big project. A benchmark, not a test.

Creates a throwaway project in the configured database (bulk inserts; items get dummy image
names, no files) with a model history as the loop leaves it (--versions fast versions with
their metrics, a fine-tuning every 50, audit answers with the guesses of those versions, and
the current version's held-out arrays for every labeled item), times each dashboard aggregate
and the whole page (Django's test client, signed in as the project's owner), prints a table,
then deletes the project, its files and its users.
On PostgreSQL the new rows are ANALYZEd first, as autovacuum would do for a real project;
SQLite gets no ANALYZE, as a default installation has none.
"""
import secrets
import shutil
import statistics
import time

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotator.dashboard import model_side, progress
from annotator.dashboard.summary import dashboard_summary
from annotator.modelloop.predictions import HELDOUT_ITEMS_FILE, HELDOUT_LABELS_FILE, HELDOUT_PROBS_FILE, artifact_path
from annotator.modelloop.status import trainer_status
from annotator.models import Annotation, Item, ModelVersion, Role, TrainerState
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCH = 5000


class Command(BaseCommand):
    help = "Time the dashboard's aggregates and page on a throwaway project with many items (needs --yes)."

    def add_arguments(self, parser):
        parser.add_argument("--items", type=int, default=100_000, help="Images in the pool (default 100000).")
        parser.add_argument("--annotations", type=int, default=60_000, help="Answers in all (default 60000).")
        parser.add_argument("--annotators", type=int, default=5, help="Annotators answering (default 5).")
        parser.add_argument("--per-item", type=int, default=2, help="Labels wanted per image (default 2).")
        parser.add_argument("--versions", type=int, default=5000,
                            help="Fast model versions in the history (default 5000).")
        parser.add_argument("--audit", type=float, default=0.1, help="Share of answers that are audits (default 0.1).")
        parser.add_argument("--repeat", type=int, default=5, help="Timed runs of each step (default 5).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--yes", action="store_true", help="Really write the throwaway project to the database.")

    def handle(self, *args, items, annotations, annotators, per_item, versions, audit, repeat, seed, yes, **options):
        database = connection.settings_dict["NAME"]
        if not yes:
            raise CommandError(
                f"This writes a throwaway project with {items} items and {annotations} answers to the database "
                f"{database} ({connection.vendor}) and deletes it afterwards. Run again with --yes to go ahead."
            )
        if annotators < per_item:
            raise CommandError("--annotators must be at least --per-item, so that each image can get its labels.")
        token = secrets.token_hex(3)
        started = time.perf_counter()
        owner, users, project = self._create(token, items, annotations, annotators, per_item, seed)
        try:
            self._model_history(project, versions, audit, seed)
            self.stdout.write(f"Created project {project.pk} on {connection.vendor} ({database}) in "
                              f"{time.perf_counter() - started:.1f} s: {self._describe(project)}")
            self._report(project, owner, repeat)
        finally:
            started = time.perf_counter()
            shutil.rmtree(artifact_path(f"projects/{project.pk}"), ignore_errors=True)
            Annotation.objects.filter(item__project=project).delete()  # before the classes they protect
            project.delete()
            get_user_model().objects.filter(pk__in=[owner.pk] + [u.pk for u in users]).delete()
            self.stdout.write(f"Deleted the throwaway project and its users in {time.perf_counter() - started:.1f} s.")

    # --- the throwaway project ----------------------------------------------------------

    def _create(self, token, n_items, n_answers, n_annotators, per_item, seed):
        rng = np.random.default_rng(seed)
        User = get_user_model()
        owner = User.objects.create_user(f"bench-{token}-owner")
        users = [User.objects.create_user(f"bench-{token}-{i}") for i in range(n_annotators)]
        project = create_project(owner, check_limits=False, name=f"Dashboard benchmark {token}", classes=CLASSES,
                                          audit_fraction=0.0, annotations_per_item=per_item)
        for user in users:
            add_member(project, user.get_username(), Role.ANNOTATOR)
        answers = self._plan(rng, n_items, n_answers, len(users), per_item)
        labels = np.bincount([i for i, _u, label, _ms in answers if label is not None], minlength=n_items)
        created = Item.objects.bulk_create(
            (
                Item(project=project, image=f"bench/{token}/{i}.png", content_hash=f"{token}{i:058x}",
                     width=32, height=32, pool_index=i, priority=float(rng.random()),
                     label_count=int(labels[i]), done=bool(labels[i] >= per_item))
                for i in range(n_items)
            ),
            batch_size=BATCH,
        )
        classes = project.ordered_classes()
        Annotation.objects.bulk_create(
            (
                Annotation(item_id=created[i].pk, annotator=users[u], label=None if label is None else classes[label],
                           skipped=label is None, idempotency_key=f"bench-{i}", duration_ms=ms)
                for i, u, label, ms in answers
            ),
            batch_size=BATCH,
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE annotator_item, annotator_annotation")
        return owner, users, project

    def _model_history(self, project, n_versions, audit_share, seed):
        """Versions as the loop writes them, audits that point at them, and the current
        version's held-out arrays (every labeled item, their majority label, 10 columns)."""
        rng = np.random.default_rng(seed + 1)
        labeled = Item.objects.filter(project=project, label_count__gt=0).count()
        c = len(CLASSES)
        rows = []
        for number in range(1, n_versions + 1):
            used = max(1, labeled * number // n_versions)
            kind = ModelVersion.Kind.SLOW if number % 50 == 0 else ModelVersion.Kind.FAST
            metrics = ({"accepted": True, "adopted": bool(number % 100 == 0)} if kind == ModelVersion.Kind.SLOW else
                       {"cv_accuracy": round(0.5 + 0.45 * number / n_versions, 4), "unlabeled": 1000,
                        "uncertainty_hist": rng.integers(0, 500, 20).tolist(), "uncertainty_mean": 0.4,
                        "predicted_unlabeled": rng.integers(0, 500, c).tolist(), "mean_confidence": 0.8,
                        "predicted_counts": rng.integers(0, 500, c).tolist(), "classes_labeled": c})
            rows.append(ModelVersion(project=project, number=number, kind=kind, labels_used=used, classes=CLASSES,
                                     metrics=metrics, durations={"total_s": 0.1}))
        ModelVersion.objects.bulk_create(rows, batch_size=BATCH)
        current = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.FAST).order_by("-number").first()
        folder = f"projects/{project.pk}/bench-{current.number}"
        base = artifact_path(folder)
        base.mkdir(parents=True, exist_ok=True)
        items = np.array(list(Item.objects.filter(project=project, label_count__gt=0).order_by("pk")
                              .values_list("pk", flat=True)), np.int64)
        truth = rng.integers(0, c, len(items))
        probs = rng.dirichlet(np.full(c, 0.3), size=len(items)).astype(np.float32)
        np.save(base / HELDOUT_ITEMS_FILE, items)
        np.save(base / HELDOUT_LABELS_FILE, truth)
        np.save(base / HELDOUT_PROBS_FILE, probs)
        ModelVersion.objects.filter(pk=current.pk).update(artifact_dir=folder)
        TrainerState.objects.update_or_create(project=project, defaults={"current_version": current})
        # Audit answers: a share of the labels, each with a guess from a version spread over the history.
        answers = list(Annotation.objects.filter(item__project=project, skipped=False).values_list("pk", flat=True))
        picked = rng.choice(len(answers), size=int(len(answers) * audit_share), replace=False)
        version_ids = list(ModelVersion.objects.filter(project=project).order_by("number").values_list("pk", flat=True))
        updates = []
        for k, i in enumerate(sorted(picked)):
            annotation = Annotation(pk=answers[i], is_audit=True,
                                    model_version_id=version_ids[k * len(version_ids) // max(1, len(picked))],
                                    suggestion={"label": CLASSES[int(rng.integers(c))], "confidence": 0.9, "top": []})
            updates.append(annotation)
        Annotation.objects.bulk_update(updates, ["is_audit", "model_version", "suggestion"], batch_size=BATCH)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE annotator_annotation, annotator_modelversion")

    @staticmethod
    def _plan(rng, n_items, n_answers, n_users, per_item):
        """[(item index, annotator index, class index or None for a skip, duration_ms)]: images
        from the start of the pool get 1 to `per_item` answers from distinct annotators; 8% are
        skips; labels agree with the image's "true" class 80% of the time."""
        answers, item = [], 0
        while len(answers) < n_answers and item < n_items:
            truth = item % len(CLASSES)
            for user in rng.choice(n_users, size=int(rng.integers(1, per_item + 1)), replace=False):
                if len(answers) == n_answers:
                    break
                label = truth if rng.random() < 0.8 else int(rng.integers(len(CLASSES)))
                if rng.random() < 0.08:
                    label = None  # a skip
                answers.append((item, int(user), label, int(rng.lognormal(7.5, 0.6))))
            item += 1
        return answers

    def _describe(self, project):
        p = progress.progress(project)
        answers = Annotation.objects.filter(item__project=project).count()
        audits = Annotation.objects.filter(item__project=project, is_audit=True).count()
        versions = ModelVersion.objects.filter(project=project).count()
        return (f"{p['items']} items, {p['labeled']} labeled, {p['skipped']} skipped only, "
                f"{p['multi_labeled']} with 2+ labels, {answers} answers ({audits} audits), {versions} model versions")

    # --- timings --------------------------------------------------------------------------

    def _report(self, project, owner, repeat):
        client = Client(SERVER_NAME="localhost")
        client.force_login(owner)
        url = reverse("project-dashboard", args=[project.pk])

        def page():
            response = client.get(url)
            if response.status_code != 200:
                raise CommandError(f"The dashboard answered {response.status_code} instead of 200.")

        steps = [
            ("progress", lambda: progress.progress(project)),
            ("per_class", lambda: progress.per_class(project)),
            ("answer_counts", lambda: progress.answer_counts(project)),
            ("median_label_ms", lambda: progress.median_label_ms(project)),
            ("agreement_pairs", lambda: progress.agreement_pairs(project)),
            ("summary (all six)", lambda: dashboard_summary(project, with_model=False)),
            ("audit_curve", lambda: model_side.audit_curve(project)),
            ("cv_curve", lambda: model_side.cv_curve(project)),
            ("model_summary", lambda: model_side.model_summary(project)),
            ("trainer_status", lambda: trainer_status(project)),  # the page's live indicator
            ("page GET (test client)", page),
        ]
        header = f"{'step':<24} {'queries':>7} {'median ms':>10} {'min ms':>8} {'max ms':>8}"
        self.stdout.write(f"\n{header}   ({repeat} runs)")
        for name, step in steps:
            reset_queries()  # with DEBUG the log is a bounded deque, full after the bulk inserts
            with CaptureQueriesContext(connection) as queries:
                step()  # warm-up run, also counts the queries
            times = []
            for _ in range(repeat):
                reset_queries()
                started = time.perf_counter()
                step()
                times.append((time.perf_counter() - started) * 1000)
            self.stdout.write(f"{name:<24} {len(queries.captured_queries):>7} {statistics.median(times):>10.1f} "
                              f"{min(times):>8.1f} {max(times):>8.1f}")
        self.stdout.write("")
