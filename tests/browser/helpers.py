"""Browser test helpers shared by the test files (the fixture lives in conftest.py)."""
import asyncio
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from annotator import events
from annotator.modelloop import predictions
from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # screenshots
# live.js timings a test page runs with (see its LiveConfig), so reconnects take a second.
FAST_LIVE = "window.LiveConfig = {pollMs: 400, backoffMs: [200, 400, 800], heartbeatMs: 300, pongTimeoutMs: 1500};"
# Every browser test file's marks; ASGI_MARKS for those that serve with serve_asgi().
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM}"),
]
ASGI_MARKS = BROWSER_MARKS + [
    # Django's ASGI handler says so for every file response (images, static files).
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


def log_in(browser, live_server, username, next_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{next_path}")
    return page


@contextmanager
def serve_asgi(app=None):
    """Serve the project's ASGI application (HTTP and websockets), or `app` wrapping it, with
    uvicorn in a thread on a free port; yields (base URL, the server's event loop). Django's
    live_server speaks WSGI only. Events published meanwhile (events.publish) go to this
    server's fresh in-memory channel layer, on its loop, as a trainer in the same process
    sends them; request threads open their own connections to the test database (a file)."""
    import uvicorn
    from channels.layers import channel_layers

    from annotator.asgi import application

    channel_layers.backends.clear()  # a fresh in-memory layer, bound to this server's loop
    predictions._cache.clear()  # model version ids repeat after each test's flush
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app or application, lifespan="off", log_level="warning",
                                           timeout_graceful_shutdown=2))
    loop = asyncio.new_event_loop()

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    events.set_publisher(events.loop_publisher(loop))
    try:
        yield f"http://127.0.0.1:{port}", loop
    finally:
        events.set_publisher(None)
        server.should_exit = True
        thread.join(15)
        sock.close()
        channel_layers.backends.clear()
