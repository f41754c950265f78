"""`manage.py soak`: many simulated annotators against a running server, then the check that
nothing was lost or doubled.

    python manage.py soak setup --annotators 50 --images 4000 --out soak.json
    python manage.py soak run --setup soak.json --url http://127.0.0.1:8000 --seconds 600 \\
        --drop 0.05 --json result.json

`setup` (against the server's database) creates an owner, N annotators with API tokens and
a project of generated images. `run` needs only HTTP: N threads label flat out (or with
`--think 1,3` seconds between answers), drop a fraction of answers mid-flight and send them
again, retry through server errors, then read every answer back and report acknowledged
vs stored, duplicates, items served twice, throughput and next + answer p50/p95/p99. It
exits with status 1 when an invariant fails. The client is `annotator.management.loadclient`.
"""
import io
import json
import time
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError
from PIL import Image
from tqdm import tqdm

from annotator.accounts.tokens import issue_token
from annotator.importing.images import import_uploads
from annotator.management import loadclient
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

CLASSES = ["bar", "column", "square", "ring"]


def generated_png(kind, rng, size=32):
    """A noisy grayscale picture of one of CLASSES (distinct bytes per call)."""
    a = rng.integers(0, 80, size=(size, size)).astype(np.uint8)
    p = int(rng.integers(4, size - 8))
    if kind == "bar":
        a[p:p + 4, 3:-3] = 255
    elif kind == "column":
        a[3:-3, p:p + 4] = 255
    elif kind == "square":
        a[p:p + 7, p - 2:p + 5] = 255
    else:
        yy, xx = np.mgrid[:size, :size]
        r = np.hypot(yy - size / 2, xx - size / 2)
        a[(r > p / 2) & (r < p / 2 + 3)] = 255
    buf = io.BytesIO()
    Image.fromarray(a, "L").save(buf, format="PNG")
    return buf.getvalue()


class Command(BaseCommand):
    help = "Simulated annotators against a running server (setup, then run)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        setup = sub.add_parser("setup", help="Users, tokens and a project of generated images.")
        setup.add_argument("--annotators", type=int, default=50)
        setup.add_argument("--images", type=int, default=4000)
        setup.add_argument("--prefix", default="soak", help="Usernames start with this (default soak).")
        setup.add_argument("--url", default="http://127.0.0.1:8000", help="Server URL stored for `run`.")
        setup.add_argument("--out", required=True, help="JSON file for `run` (holds the tokens: keep it private).")
        setup.add_argument("--seed", type=int, default=0)
        run = sub.add_parser("run", help="Label against the server, then verify.")
        run.add_argument("--setup", required=True, help="The file `setup` wrote.")
        run.add_argument("--url", help="Server URL (default: the one in the setup file).")
        run.add_argument("--annotators", type=int, help="Use the first N of the setup's annotators.")
        run.add_argument("--seconds", type=float, default=60.0)
        run.add_argument("--drop", type=float, default=0.0, help="Fraction of answers dropped mid-flight and resent.")
        run.add_argument("--think", default="0,0", help="Seconds between answers, MIN,MAX (default 0,0: flat out).")
        run.add_argument("--retry-for", type=float, default=60.0, help="Keep retrying a failing request this long.")
        run.add_argument("--seed", type=int, default=0)
        run.add_argument("--json", dest="json_out", help="Write the result here too.")

    def handle(self, *args, action, **options):
        if action == "setup":
            self.setup(**options)
        else:
            self.run(**options)

    def setup(self, *, annotators, images, prefix, url, out, seed, verbosity=1, **_):
        if annotators < 1 or images < 1:
            raise CommandError("--annotators and --images must be at least 1.")
        users = get_user_model().objects
        owner, _ = users.get_or_create(username=f"{prefix}-owner")
        project = create_project(owner, name=f"{prefix} {time.strftime('%Y%m%d-%H%M%S')}", classes=CLASSES,
                                 audit_fraction=0.0, check_limits=False)
        people = []
        for i in range(annotators):
            user, _ = users.get_or_create(username=f"{prefix}-{i + 1}")
            add_member(project, user.username, "annotator")
            people.append([user.username, issue_token(user, name="soak")[1]])
        rng = np.random.default_rng(seed)
        uploads = (SimpleUploadedFile(f"{i:06d}.png", generated_png(CLASSES[i % len(CLASSES)], rng), "image/png")
                   for i in range(images))
        with tqdm(total=images, unit="img", desc="Importing", disable=verbosity == 0) as bar:
            report = import_uploads(project, list(uploads), user=owner,
                                    progress=lambda done, total: bar.update(done - bar.n))
        data = {"url": url, "project": project.pk, "classes": CLASSES, "owner_token": issue_token(owner, name="soak")[1],
                "annotators": people, "images": report.counts["imported"]}
        Path(out).write_text(json.dumps(data, indent=1))
        Path(out).chmod(0o600)
        self.stdout.write(f"Project {project.pk} with {images} images and {annotators} annotators; run with "
                          f"`python manage.py soak run --setup {out}`.")

    def run(self, *, setup, url, annotators, seconds, drop, think, retry_for, seed, json_out, **_):
        try:
            plan = json.loads(Path(setup).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{setup}: not a file written by `soak setup` ({exc}).") from None
        try:
            low, high = (float(x) for x in think.split(","))
        except ValueError:
            raise CommandError("--think takes MIN,MAX in seconds, e.g. 1,3.") from None
        if not 0 <= drop <= 1:
            raise CommandError("--drop is a fraction between 0 and 1.")
        url = url or plan["url"]
        people = plan["annotators"][:annotators] if annotators else plan["annotators"]
        started = time.monotonic()
        tally = loadclient.run(url, plan["project"], plan["classes"], [tuple(p) for p in people], seconds,
                               drop=drop, think=(low, high), retry_for=retry_for, seed=seed)
        elapsed = time.monotonic() - started
        checks = loadclient.verify(tally, loadclient.stored_answers(url, plan["owner_token"], plan["project"]))
        result = {
            "annotators": len(people), "seconds": round(elapsed, 1), "drop": drop, "think_s": [low, high],
            "answers_per_s": round(len(tally.acked) / elapsed, 2) if elapsed else None,
            **loadclient.percentiles(tally.latencies_ms), **checks,
            "conflicts": tally.conflicts, "dropped_and_resent": tally.drops, "retries": dict(tally.retries),
            "errors": tally.errors[:20],
        }
        if json_out:
            Path(json_out).write_text(json.dumps(result, indent=1))
        self.stdout.write(json.dumps(result, indent=1))
        failed = (checks["lost"] or checks["duplicates"] or checks["acknowledged_twice"] or checks["served_twice"]
                  or checks["acknowledged"] != checks["stored"] or tally.errors)
        if failed:
            raise CommandError("An invariant failed (see above).")

