"""Beyond one machine: two `manage.py serve` processes and one `manage.py trainer`, each with
its OWN empty DATA_DIR, sharing only PostgreSQL (a database of this test), Redis and an S3
bucket (moto's server, started here). Images are imported in place from a bucket through one
web process, labeled through the other, the trainer (reading the images through the storage)
makes guesses that both web processes serve, both export a zip that torchvision's ImageFolder
loads, images reach browsers by a presigned redirect (one web process) and a streamed proxy
(the other), and no image file is ever written under any DATA_DIR."""
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.faults.conftest import Server, free_port, stop_process  # noqa: F401 - Server's helpers
from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, client

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["dark", "mid", "bright"]
LEVELS = {"dark": 40, "mid": 128, "bright": 215}
IMAGES_PER_CLASS = 10
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def _postgres_url():
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


@pytest.fixture
def shared_database():
    server = _postgres_url()
    if server is None:
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...) and Redis: the processes share them")
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: the web processes share their live events through Redis")
    import psycopg

    name = f"multi_{uuid.uuid4().hex[:12]}"
    base = server.split("?", 1)[0].rsplit("/", 1)[0]
    maintenance = f"{base}/postgres"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _picture(level, rng):
    pixels = np.clip(level + rng.integers(-25, 25, size=(20, 20)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def _env(data_dir, database_url, endpoint, store, delivery, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DJANGO_", "AWS_"))}
    env.update(
        DATA_DIR=str(data_dir), DATABASE_URL=database_url, REDIS_URL=os.environ["REDIS_URL"],
        SECRET_KEY="multi-machine-" + "k" * 40, DJANGO_SETTINGS_MODULE="annotator.settings", LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT), READY_REQUIRE_TRAINER="0",
        STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME=store, AWS_S3_ENDPOINT_URL=endpoint,
        AWS_S3_REGION_NAME=REGION, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        MEDIA_DELIVERY=delivery,
        # a tiny, fast model: pretraining for a second and a half, guesses after every label
        TRAINER_PRETRAIN_BUDGET_S="1.5", TRAINER_FAST_MIN_INTERVAL_S="0", TRAINER_POLL_SECONDS="0.1",
        TRAINER_SLOW_EVERY="0", TRAINER_LEASE_SECONDS="10", EMBED_WORKERS="0",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Api:
    def __init__(self, server, token):
        self.base, self.token = server.url, token

    def call(self, method, path, body=None, redirects=True):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers={"Authorization": f"Token {self.token}",
                                                  "Content-Type": "application/json"})
        opener = urllib.request.build_opener() if redirects else urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=60) as reply:
                return reply.status, reply.read(), reply.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers

    def json(self, method, path, body=None):
        status, data, _ = self.call(method, path, body)
        return status, (json.loads(data) if data else None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _token(server, username, password):
    request = urllib.request.Request(f"{server.url}/api/auth/token/", method="POST",
                                     data=json.dumps({"username": username, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())["token"]


def _image_files(folder):
    return [p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def test_two_web_processes_and_a_trainer_share_only_the_database_redis_and_the_bucket(
        shared_database, moto_endpoint, tmp_path):
    from torchvision.datasets import ImageFolder

    from mlcore.checkpoint import load_checkpoint

    store, source = f"store-{uuid.uuid4().hex[:8]}", f"source-{uuid.uuid4().hex[:8]}"
    s3 = client(moto_endpoint)
    s3.create_bucket(Bucket=store)
    s3.create_bucket(Bucket=source)
    rng = np.random.default_rng(0)
    truth = {}
    for name in CLASSES:
        for i in range(IMAGES_PER_CLASS):
            key = f"incoming/{name}-{i:02d}.png"
            s3.put_object(Bucket=source, Key=key, Body=_picture(LEVELS[name], rng))
            truth[key.rsplit("/", 1)[1]] = name
    dirs = {name: tmp_path / name for name in ("web1", "web2", "trainer")}
    envs = {
        "web1": _env(dirs["web1"], shared_database, moto_endpoint, store, "presigned"),
        "web2": _env(dirs["web2"], shared_database, moto_endpoint, store, "proxy"),
        "trainer": _env(dirs["trainer"], shared_database, moto_endpoint, store, "presigned",
                        CACHE_DIR=tmp_path / "trainer-cache"),
    }
    started = time.monotonic()
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from django.core.management import call_command; call_command('migrate', verbosity=0); "
                    "from django.contrib.auth import get_user_model; "
                    "get_user_model().objects.create_user('alice', password='multi-machine-pass-1')"],
                   cwd=ROOT, env=envs["web1"], check=True, timeout=300)
    web1, web2 = Server(envs["web1"], tmp_path / "web1.log"), Server(envs["web2"], tmp_path / "web2.log")
    trainer_log = open(tmp_path / "trainer.log", "wb")
    # the trainer waits for a project with images; the three start side by side
    trainer = subprocess.Popen([sys.executable, "manage.py", "trainer", "--name", "remote"], cwd=ROOT,
                               env=envs["trainer"], stdout=trainer_log, stderr=subprocess.STDOUT)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Server.start, (web1, web2)))
        one = Api(web1, _token(web1, "alice", "multi-machine-pass-1"))
        two = Api(web2, _token(web2, "alice", "multi-machine-pass-1"))
        status, project = one.json("POST", "/api/projects/", {"name": "Shades", "classes": CLASSES,
                                                             "audit_fraction": 0.0})
        assert status == 201, project
        pk = project["id"]

        # import in place through web process 1
        status, report = one.json("POST", f"/api/projects/{pk}/bucket-import/", {"url": f"s3://{source}/incoming/"})
        assert status == 201 and report["registered"] == len(truth) and report["rejected"] == 0, report

        # label through web process 2; the names say the truth
        status, items = two.json("GET", f"/api/projects/{pk}/items/?page_size=100")
        assert status == 200 and items["count"] == len(truth), items
        names = {item["id"]: item["file_name"] for item in items["results"]}
        given = Counter()
        for n in range(12):
            status, lease = two.json("POST", f"/api/projects/{pk}/next/", {})
            assert status == 200, lease
            status, answer = two.json("POST", f"/api/projects/{pk}/annotations/", {
                "item": lease["id"], "label": truth[names[lease["id"]]], "idempotency_key": f"a{n}"})
            assert status == 201, answer
            given[truth[names[lease["id"]]]] += 1

        # the trainer's guesses reach both web processes (its files come through the bucket)
        deadline = time.monotonic() + 90
        suggestion, held = None, []
        while time.monotonic() < deadline and suggestion is None:
            assert trainer.poll() is None, (tmp_path / "trainer.log").read_text()[-3000:]
            # a lease keeps the guess it was made with: give it back and take a fresh one
            status, lease = one.json("POST", f"/api/projects/{pk}/next/", {"release": held})
            assert status == 200, lease
            held, suggestion = [lease["id"]], lease["suggestion"]
            if suggestion is None:
                time.sleep(0.5)
        assert suggestion is not None and suggestion["label"] in CLASSES, (
            (tmp_path / "trainer.log").read_text()[-3000:] + web1.output())
        status, lease2 = two.json("POST", f"/api/projects/{pk}/next/", {"release": held})
        assert status == 200 and lease2["suggestion"] is not None, (lease2, web2.output())

        # images: a presigned redirect from web 1, a streamed proxy from web 2; members only
        item_id = lease["id"]
        original = s3.get_object(Bucket=source, Key=f"incoming/{names[item_id]}")["Body"].read()
        status, _, headers = one.call("GET", f"/projects/{pk}/items/{item_id}/image/", redirects=False)
        assert status == 302 and headers["Location"].startswith(moto_endpoint)
        with urllib.request.urlopen(headers["Location"], timeout=30) as reply:
            assert reply.read() == original
        status, body, _ = two.call("GET", f"/projects/{pk}/items/{item_id}/image/")
        assert status == 200 and body == original

        # the export from either web process loads in torchvision's ImageFolder
        for api, name in ((one, "one"), (two, "two")):
            status, body, _ = api.call("GET", f"/api/projects/{pk}/export/?format=imagefolder")
            assert status == 200
            folder = tmp_path / f"export-{name}"
            zipfile.ZipFile(io.BytesIO(body)).extractall(folder)
            dataset = ImageFolder(str(folder))
            assert Counter(dataset.classes[target] for _, target in dataset.samples) == given
            image, _ = dataset[0]
            assert image.size == (20, 20)

        # the checkpoint and embeddings come through the bucket too: the model and embeddings
        # exports from the web processes, whose disks never had them
        status, body, _ = two.call("GET", f"/api/projects/{pk}/export/?format=embeddings")
        assert status == 200, body[:500]
        with np.load(io.BytesIO(body)) as npz:
            assert sorted(npz["item_id"].tolist()) == sorted(names) and npz["embeddings"].shape[0] == len(names)
        status, body, _ = one.call("GET", f"/api/projects/{pk}/export/?format=model")
        assert status == 200, body[:500]
        (tmp_path / "model.pt").write_bytes(body)
        assert load_checkpoint(str(tmp_path / "model.pt"))["meta"]["classes"] == list(CLASSES)
    finally:
        stop_process(trainer, timeout=30)
        trainer_log.close()
        web1.stop()
        web2.stop()
    # nothing an image: not under any process's DATA_DIR
    for name, folder in dirs.items():
        assert _image_files(folder) == [], f"{name} wrote images under its DATA_DIR: {_image_files(folder)}"
    assert _image_files(tmp_path / "trainer-cache") == []
    took = time.monotonic() - started
    print(f"multi-machine test: {took:.1f} s from migrate to the last check")
    assert took < 240  # a bound against a hang; the time is printed (-s) and in the report
