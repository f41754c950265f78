"""Helpers for the owner's end-to-end browser test: the ASGI app under uvicorn in a thread, a
trainer in another thread, shape images on disk, and a page that records console errors.

The server and the trainer share one process, so the trainer's events reach the browser
through the server loop's in-memory channel layer (events.loop_publisher), as in
tests/browser/test_live.py."""
import threading
from contextlib import contextmanager

import numpy as np

from annotator.modelloop.trainer import Trainer
from tests.annotator.modelloop.trainer_helpers import SHAPES, png, shape_image
from tests.browser.helpers import serve_asgi
from tests.conftest import PASSWORD


@contextmanager
def asgi_server():
    """The base URL of the ASGI application served by uvicorn (tests/browser/helpers.py)."""
    with serve_asgi() as (url, _loop):
        yield url


@contextmanager
def trainer_thread(name="e2e-browser"):
    """A trainer running in the background like `manage.py trainer`, stopped on exit."""
    trainer = Trainer(name)
    thread = threading.Thread(target=trainer.run, name="trainer-e2e", daemon=True)
    thread.start()
    try:
        yield trainer
    finally:
        trainer.stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the trainer did not stop"


def write_shapes(folder, n, seed=0, contrast=1.0, noise=0.0):
    """n shape PNGs named `<shape>-<i>.png`, cycling through SHAPES; returns the paths.
    `contrast` scales trainer_helpers' picture and `noise` adds Gaussian noise (its standard
    deviation in grey levels): lower contrast and more noise make the shapes harder to tell
    apart, so the model needs labels before it gets them right."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        kind = SHAPES[i % len(SHAPES)]
        path = folder / f"{kind}-{i:03d}.png"
        a = shape_image(kind, rng).astype(np.float32) * contrast + rng.normal(0, noise, size=(16, 16))
        path.write_bytes(png(np.clip(a, 0, 255).astype(np.uint8)))
        paths.append(path)
    return paths


def shape_of(name):
    """The true class of an image from its file name (`column-007.png` -> `column`)."""
    kind = name.rsplit("-", 1)[0]
    assert kind in SHAPES, f"not a shape file name: {name!r}"
    return kind


def watch_console(page):
    """Collects console errors and uncaught exceptions of `page` into the returned list."""
    problems = []

    def on_console(message):
        if message.type == "error":
            problems.append(f"console.error: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    return problems


def log_in(page, base_url, username, next_path):
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")
