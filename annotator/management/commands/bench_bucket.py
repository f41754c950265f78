"""`manage.py bench_bucket --yes`: registering a bucket prefix in place (annotator.importing.bucket),
timed: N small PNGs are put in a fresh bucket, imported into a throwaway project, then imported
again (which must register nothing), over several repeats; prints objects/s per run and the
mean ± sd.

Without `--endpoint` the bucket lives in moto's S3 server, started in this process on a free
port (moto is a test dependency): the figure then includes moto's own work on the same cores.
With `--endpoint` (MinIO, say; credentials from the AWS_* settings) a real server is measured.
The project and its items are deleted afterwards; the bucket's objects are left to moto, or
deleted from a real server."""
import io
import json
import statistics
import time
import uuid

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings
from PIL import Image

from annotator.importing.bucket import import_bucket
from annotator.projects.changes import create_project

REGION = "us-east-1"


def _moto():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _png(rng, side):
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L").save(buffer, format="PNG")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Time an in-place bucket import of N objects and its re-run (needs --yes: writes a throwaway project)."

    def add_arguments(self, parser):
        parser.add_argument("--objects", type=int, default=10_000)
        parser.add_argument("--side", type=int, default=28, help="Side of the square test images in pixels.")
        parser.add_argument("--repeats", type=int, default=3)
        parser.add_argument("--endpoint", default="", help="A real S3 endpoint (else moto in this process).")
        parser.add_argument("--json", dest="json_path", default="")
        parser.add_argument("--yes", action="store_true", help="Really write a throwaway project.")

    def handle(self, *args, objects, side, repeats, endpoint, json_path, yes, **options):
        if not yes:
            raise CommandError("This writes a throwaway project (and a bucket's objects): pass --yes.")
        if objects < 1 or repeats < 1 or not 8 <= side <= 4096:
            raise CommandError("--objects and --repeats must be at least 1, --side 8-4096.")
        import boto3

        server, overrides = None, {}
        if not endpoint:
            server, endpoint = _moto()
            overrides.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        overrides.update(AWS_S3_ENDPOINT_URL=endpoint, AWS_S3_REGION_NAME=settings.AWS_S3_REGION_NAME or REGION)
        runs, real = [], server is None
        try:
            with override_settings(**overrides):  # this run's bucket server only, restored afterwards
                s3 = boto3.client("s3", endpoint_url=endpoint, region_name=settings.AWS_S3_REGION_NAME,
                                  aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
                                  aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY)
                for repeat in range(repeats):
                    runs.append(self._run(s3, objects, side, repeat, real))
                    self.stdout.write(json.dumps(runs[-1]))
        finally:
            if server is not None:
                server.stop()
        rates = [r["objects_per_s"] for r in runs]
        spread = statistics.stdev(rates) if len(rates) > 1 else 0.0
        self.stdout.write(f"{objects} objects of {side}x{side} px: {statistics.mean(rates):.1f} ± {spread:.1f} "
                          f"objects/s over {len(runs)} runs; re-runs registered "
                          f"{sum(r['rerun_registered'] for r in runs)} (mean {statistics.mean(r['rerun_s'] for r in runs):.2f} s)")
        if json_path:
            with open(json_path, "w") as out:
                json.dump({"objects": objects, "side": side, "endpoint": endpoint, "runs": runs}, out, indent=2)

    def _run(self, s3, objects, side, repeat, real):
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        rng = np.random.default_rng(repeat)
        for i in range(objects):
            s3.put_object(Bucket=bucket, Key=f"set/{i:07d}.png", Body=_png(rng, side))
        user = get_user_model().objects.create_user(f"bench-bucket-{uuid.uuid4().hex[:8]}")
        project = create_project(user, name=f"bench bucket {bucket}", classes=["a", "b"], check_limits=False)
        try:
            t = time.perf_counter()
            first = import_bucket(project, f"s3://{bucket}/set/", user=user).counts
            took = time.perf_counter() - t
            t = time.perf_counter()
            again = import_bucket(project, f"s3://{bucket}/set/", user=user).counts
            rerun = time.perf_counter() - t
        finally:
            project.delete()
            user.delete()
            if real:  # moto's objects go with its server
                self._empty(s3, bucket)
        return {"repeat": repeat, "registered": first["imported"], "rejected": first["rejected"],
                "seconds": round(took, 2), "objects_per_s": round(objects / took, 1),
                "rerun_registered": again["imported"], "rerun_s": round(rerun, 2)}

    @staticmethod
    def _empty(s3, bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=bucket)
