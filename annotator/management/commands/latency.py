"""`manage.py latency`: how fast a running server serves an annotator, measured from outside.

Logs in through the API (token), then for --seconds asks for the next item and answers it
(with the model's guess when there is one, else the first class), like a very fast
annotator. Prints the median, p95 and max round trip of next + answer. Used to choose
where `serve` runs the trainer (docs/model-loop.md, "Processes").
"""
import json
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Measure next-item + answer round trips against a running server."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Server base URL.")
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--project", type=int, required=True, help="Project id.")
        parser.add_argument("--seconds", type=float, default=60.0)
        parser.add_argument("--pause", type=float, default=0.5, help="Think time between answers (s).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the result as JSON.")

    def handle(self, *args, url, username, password, project, seconds, pause, as_json, **options):
        token = self._call(f"{url}/api/auth/token/", {"username": username, "password": password, "name": "manage.py latency"})["token"]
        classes = self._call(f"{url}/api/projects/{project}/", None, token)["classes"]
        first = classes[0]["name"] if isinstance(classes[0], dict) else classes[0]
        times, guessed, deadline = [], 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            lease = self._call(f"{url}/api/projects/{project}/next/", {}, token)
            if lease is None:
                break
            guess = lease.get("suggestion")
            guessed += bool(guess)
            label = guess["label"] if guess else first
            self._call(f"{url}/api/projects/{project}/annotations/",
                       {"item": lease["id"], "label": label, "idempotency_key": uuid.uuid4().hex}, token)
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(pause)
        if not times:
            raise CommandError("No item was served: is the project empty or fully labeled?")
        ms = np.array(times)
        result = {"answers": len(ms), "with_guess": guessed, "median_ms": round(float(np.median(ms)), 1),
                  "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)}
        self.stdout.write(json.dumps(result) if as_json else
                          f"{result['answers']} answers: median {result['median_ms']} ms, p95 {result['p95_ms']} ms, "
                          f"max {result['max_ms']} ms ({guessed} with a model guess)")

    def _call(self, url, body, token=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{url}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        return json.loads(raw) if raw else None
