"""Redis (the channel layer and the cache of `manage.py serve`) stopped for REDIS_OUTAGE_S
seconds (30 by default, as in CI) while five simulated annotators label through the API and
the owner has a live websocket open.

What must hold: labeling goes on with no error and no retry (answers never touch Redis);
signing in for a token and the owner's settings changes answer 200 (the throttle fails open,
live events are best effort); /readyz says `channel_layer` is failing (503) and recovers to
200 once Redis is back; the open socket is closed with 1012 ("service restart") and a new one
is refused while Redis is down (a browser keeps polling and reconnecting with backoff,
static/js/live.js); a socket reconnected afterwards receives live events again.
Figures: test-artifacts/faults-redis-outage.json, quoted in docs/reliability.md."""
import json
import os
import threading
import time
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from annotator.management import loadclient
from tests.annotator.modelloop.test_serve_loop import login
from tests.faults.conftest import (
    OWNER_PASSWORD,
    Server,
    annotators_of,
    app_env,
    manage,
    soak_setup,
    write_figures,
)

pytestmark = pytest.mark.slow

OUTAGE_S = float(os.environ.get("REDIS_OUTAGE_S", "30"))
BEFORE_S, AFTER_S = 4.0, 14.0
ANNOTATORS = 5


def _socket(server, cookie, timeout=5):
    return connect(f"ws://127.0.0.1:{server.port}/ws/projects/1/", open_timeout=timeout,
                   additional_headers={"Cookie": cookie, "Origin": server.url})


def _next_message(ws, timeout):
    """The next JSON message, "timeout" if none came, or ("closed", code) if the socket closed."""
    try:
        return json.loads(ws.recv(timeout=timeout))
    except TimeoutError:
        return "timeout"
    except ConnectionClosed as exc:
        return ("closed", exc.rcvd.code if exc.rcvd else None)


def _call(server, token, method, path, body=None):
    """(status, body) over a connection of its own (a kept-alive one may have timed out)."""
    client = loadclient.Client(server.url, token)
    try:
        return client.call(method, path, body)
    finally:
        client.close()


def _wait_ready(server, want, timeout):
    """Poll /readyz until its status is `want`; (seconds it took, last body)."""
    started = time.monotonic()
    body = None
    while time.monotonic() - started < timeout:
        status, body = server.get("/readyz")
        if status == want:
            return round(time.monotonic() - started, 2), body
        time.sleep(0.25)
    raise AssertionError(f"/readyz did not answer {want} within {timeout} s: {body}")


def test_labeling_goes_on_and_sockets_recover_when_redis_stops(private_redis, app_database, tmp_path):
    env = app_env(tmp_path / "data", app_database, private_redis.url)
    manage(env, "migrate", "--noinput", "-v", "0")
    plan = soak_setup(env, tmp_path, annotators=ANNOTATORS, images=1500)
    project = plan["project"]
    server = Server(env, tmp_path / "serve.log")
    figures = {"outage_s": OUTAGE_S, "annotators": ANNOTATORS}
    sockets = ExitStack()
    try:
        server.start()
        token = plan["owner_token"]
        assert server.get("/readyz")[0] == 200
        cookie = login(server.url, "fault-owner", OWNER_PASSWORD)
        ws = sockets.enter_context(_socket(server, cookie))
        first = _next_message(ws, 10)
        assert isinstance(first, dict) and first["type"] == "status", first

        box = {}
        seconds = BEFORE_S + OUTAGE_S + AFTER_S
        labeling = threading.Thread(target=lambda: box.update(tally=loadclient.run(
            server.url, project, plan["classes"], annotators_of(plan), seconds, drop=0.05, think=(0.1, 0.3),
            retry_for=30, seed=5)))
        labeling.start()
        time.sleep(BEFORE_S)

        down = time.monotonic()
        private_redis.stop()
        figures["readyz_fail_after_s"], body = _wait_ready(server, 503, 15)
        assert body["failing"] == ["channel_layer"], body
        # the open socket: does it notice? (it answers pings itself, without Redis)
        try:
            ws.send(json.dumps({"type": "ping"}))
            open_socket = _next_message(ws, 5)
        except ConnectionClosed as exc:
            open_socket = ("closed", exc.rcvd.code if exc.rcvd else None)
        figures["open_socket_during_outage"] = str(open_socket)
        # a new socket while Redis is down
        try:
            with _socket(server, cookie) as fresh:
                figures["new_socket_during_outage"] = f"accepted, then {_next_message(fresh, 5)}"
        except (InvalidStatus, ConnectionClosed, OSError, TimeoutError) as exc:
            figures["new_socket_during_outage"] = f"refused: {type(exc).__name__}: {exc}"
        # signing in (the throttle's cache is Redis) and a settings change (publishes an event)
        status, _ = _call(server, "", "POST", "/api/auth/token/",
                          {"username": "fault-owner", "password": OWNER_PASSWORD})
        figures["token_sign_in_during_outage"] = status
        status, _ = _call(server, token, "PATCH", f"/api/projects/{project}/settings/", {"training_paused": True})
        figures["settings_change_during_outage"] = status
        figures["readyz_during_outage"] = body
        time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))

        private_redis.start()
        up = time.monotonic()
        figures["redis_down_s"] = round(up - down, 1)
        figures["readyz_recovered_after_s"], _ = _wait_ready(server, 200, 30)
        # a page reconnecting as static/js/live.js does (backoff), then a live event through Redis
        reconnect_started = time.monotonic()
        ws.close()
        ws = None
        while ws is None and time.monotonic() - reconnect_started < 30:
            try:
                ws = sockets.enter_context(_socket(server, cookie))
                hello = _next_message(ws, 10)
                if not isinstance(hello, dict):
                    ws.close()
                    ws = None
            except (InvalidStatus, ConnectionClosed, OSError, TimeoutError):
                ws = None
            if ws is None:
                time.sleep(1)
        assert ws is not None, "no socket could be opened after Redis came back"
        figures["reconnected_after_s"] = round(time.monotonic() - up, 2)
        assert _call(server, token, "PATCH", f"/api/projects/{project}/settings/",
                     {"training_paused": False})[0] == 200
        sent = time.monotonic()
        event = _next_message(ws, 10)
        figures["live_event_after_recovery"] = event if isinstance(event, dict) else str(event)
        figures["live_event_latency_ms"] = round(1000 * (time.monotonic() - sent), 1)
        ws.close()

        labeling.join(seconds + 120)
        assert not labeling.is_alive(), "the annotators did not finish"
        tally = box["tally"]
        stored = loadclient.stored_answers(server.url, plan["owner_token"], project)
        log = server.output()
    finally:
        sockets.close()
        server.stop()

    checks = loadclient.verify(tally, stored)
    during = [ms for at, ms in zip(tally.acked_at, tally.latencies_ms) if down <= at <= up]
    figures.update(
        **checks, retries=dict(tally.retries), errors=tally.errors[:10], dropped_and_resent=tally.drops,
        acked_during_outage=len(during), p95_ms_during_outage=loadclient.percentiles(during)["p95_ms"],
        p95_ms_overall=loadclient.percentiles(tally.latencies_ms)["p95_ms"],
        server_log_tracebacks=log.count("Traceback"),
    )
    write_figures("redis-outage", figures)

    # labeling went on, untouched
    assert tally.errors == [] and not tally.retries, figures
    assert len(during) > 0, figures
    assert checks["acknowledged"] == checks["stored"] > 0 and checks["lost"] == [], figures
    assert checks["duplicates"] == 0 and checks["served_twice"] == 0, figures
    # the requests that touch Redis degrade instead of failing
    assert figures["token_sign_in_during_outage"] == 200, figures
    assert figures["settings_change_during_outage"] == 200, figures
    # sockets: the open one is closed with 1012 (the page reconnects), a new one is refused (403)
    assert open_socket == ("closed", 1012), figures
    assert "HTTP 403" in figures["new_socket_during_outage"], figures
    # a live event reaches the reconnected socket
    assert isinstance(event, dict) and event["type"] == "status", figures
    assert event["status"]["phase"] != "paused", figures
