"""Live updates on the labeling page in a real browser: the trainer indicator follows status
events from the project's websocket, a new queue replaces the prefetched item without a
reload, and with the socket refused the page labels over plain HTTP and catches up.

Django's live_server speaks WSGI only, so these tests run the ASGI application (HTTP and
websockets) under uvicorn in a thread; its request threads open their own connections to the
test database (a file, see tests/settings.py). Screenshots go to test-artifacts/."""
import asyncio
import os
import re
import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotator import events
from annotator.modelloop import predictions
from annotator.modelloop.status import trainer_status
from annotator.models import Annotation, Lease, ModelVersion, QueueEntry, TrainerState
from tests.browser.helpers import ARTIFACTS, ASGI_MARKS, FAST_LIVE, serve_asgi
from tests.conftest import PASSWORD

# Playwright's sync API runs an event loop in this thread; the ORM calls made here between
# browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


pytestmark = ASGI_MARKS


class SocketSwitch:
    """ASGI middleware that can refuse websocket handshakes and drop the open sockets, as a
    dead or overloaded socket server would, while HTTP keeps working."""

    def __init__(self, app):
        self.app = app
        self.refuse = False
        self.loop = None
        self._kills = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if self.refuse:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1013})
            return
        kill = asyncio.Event()
        self._kills.add(kill)

        async def guarded_receive():
            message = asyncio.ensure_future(receive())
            killed = asyncio.ensure_future(kill.wait())
            done, _ = await asyncio.wait({message, killed}, return_when=asyncio.FIRST_COMPLETED)
            if message in done:
                killed.cancel()
                return message.result()
            message.cancel()
            try:
                await send({"type": "websocket.close", "code": 1012})
            except Exception:  # noqa: BLE001 - already gone
                pass
            return {"type": "websocket.disconnect", "code": 1012}

        try:
            await self.app(scope, guarded_receive, send)
        finally:
            self._kills.discard(kill)

    def drop_all(self):
        for kill in list(self._kills):
            self.loop.call_soon_threadsafe(kill.set)


class AsgiServer:
    def __init__(self, url, switch, loop):
        self.url = url
        self.switch = switch
        self.loop = loop

    def publish(self, project, message):
        """Send a group message on the server's loop (the in-memory layer's queues live there)."""
        events.loop_publisher(self.loop)(project.pk, message)


@pytest.fixture
def asgi_server(transactional_db):
    pytest.importorskip("uvicorn")
    from annotator.asgi import application

    switch = SocketSwitch(application)
    with serve_asgi(switch) as (url, loop):
        switch.loop = loop
        yield AsgiServer(url, switch, loop)


def open_label_page(browser, server, project, username="bob", before=None):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.add_init_script(FAST_LIVE)
    if before:
        before(page)
    path = f"/projects/{project.pk}/label/"
    page.goto(f"{server.url}/accounts/login/?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{path}")
    settle(page)
    return page


def settle(page):
    page.wait_for_function("() => window.labeler.pending() === 0 && window.labeler.prefetchReady()")


def shown_item(page):
    src = page.get_attribute("#label-image", "src")
    return int(re.search(r"/items/(\d+)/image/", src).group(1))


def indicator(page):
    return page.inner_text("[data-trainer-status]").replace("\n", " ")


def wait_online(page, online=True):
    selector = "[data-trainer-status]" + (":not(.is-offline)" if online else ".is-offline")
    page.wait_for_function(
        f"() => Boolean(document.querySelector('{selector}')) && document.querySelector('[data-trainer-status]').dataset.phase !== 'unknown'"
    )


def make_version(project, number, items, *, classes=("zero", "one", "two"), probs=None, kind="fast"):
    """A model version with real probability files, current for the project."""
    folder = f"project-{project.pk}/v{number}"
    path = predictions.artifact_path(folder)
    path.mkdir(parents=True, exist_ok=True)
    ordered = sorted(items, key=lambda i: i.pool_index)
    if probs is None:
        rng = np.random.default_rng(number)
        probs = rng.dirichlet(np.ones(len(classes)), size=len(ordered))
    np.save(path / predictions.PROBS_FILE, np.asarray(probs, dtype=np.float32))
    np.save(path / predictions.POOL_INDEX_FILE, np.array([i.pool_index for i in ordered], dtype=np.int64))
    version = ModelVersion.objects.create(
        project=project, number=number, kind=kind, labels_used=10 * number, pool_size=len(ordered),
        classes=list(classes), device="cpu", artifact_dir=folder,
    )
    return version


def set_trainer(project, phase, *, progress=None, version=None, device="cuda", detail=""):
    now = timezone.now()
    TrainerState.objects.update_or_create(
        project=project,
        defaults=dict(
            owner="test-trainer", lease_expires_at=now + timedelta(minutes=5), heartbeat_at=now,
            phase=phase, progress=progress, device=device, detail=detail, current_version=version,
        ),
    )


def leased(project, user):
    return set(Lease.objects.filter(project=project, user=user).values_list("item_id", flat=True))


def test_indicator_shows_status_and_follows_events(browser, asgi_server, project, bob, make_items):
    make_items(4)
    set_trainer(project, TrainerState.Phase.PRETRAINING, progress=0.4, detail="Computing embeddings")
    page = open_label_page(browser, asgi_server, project)
    wait_online(page)
    text = indicator(page)
    assert "Pretraining" in text and "40%" in text, text
    assert page.get_attribute("[data-ts=progress]", "aria-valuenow") == "40"
    assert page.get_attribute("[data-trainer-status]", "title") == "Computing embeddings"
    assert not page.is_visible("[data-ts=offline]")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-pretraining.png"))

    # A status event from the trainer changes the indicator without a reload.
    version = make_version(project, 3, list(project.items.all()))
    set_trainer(project, TrainerState.Phase.UP_TO_DATE, version=version)
    status = trainer_status(project)
    status["accuracy"] = {"n": 40, "correct": 36, "estimate": 0.9, "low": 0.77, "high": 0.96}
    asgi_server.publish(project, events.status_event(status))
    page.wait_for_function("() => document.querySelector('[data-trainer-status]').dataset.phase === 'up-to-date'")
    text = indicator(page)
    assert "Up to date" in text and "model v3" in text and "cuda" in text, text
    assert "accuracy 90% (77-96%, n=40)" in text, text
    assert not page.is_visible("[data-ts=progress]")
    assert page.get_attribute("[data-ts=version]", "title") == "quick update, trained on 30 labels"
    page.screenshot(path=str(ARTIFACTS / "live-up-to-date.png"))

    # The heartbeat: pings are answered, so the one socket stays up.
    page.wait_for_function(f"() => Live.connect({project.pk}).counts().pongs >= 3")
    assert page.evaluate(f"() => Live.connect({project.pk}).counts().opens") == 1

    # Training with no known progress: an indeterminate bar, no percentage.
    set_trainer(project, TrainerState.Phase.TRAINING, version=version)
    asgi_server.publish(project, events.status_event(trainer_status(project)))
    page.wait_for_function("() => document.querySelector('[data-trainer-status]').dataset.phase === 'training'")
    assert page.is_visible("[data-ts=progress].is-indeterminate")
    assert page.get_attribute("[data-ts=progress]", "aria-valuenow") is None


def test_the_indicator_is_drawn_on_load_from_the_status_the_page_came_with(browser, asgi_server, project, bob, make_items):
    """No socket and no HTTP status: what the indicator shows comes from the status embedded in
    the page, drawn by live.js as it draws every later update."""
    make_items(2)
    version = make_version(project, 2, list(project.items.all()), kind="slow")
    set_trainer(project, TrainerState.Phase.TRAINING, progress=0.4, version=version, detail="Epoch 3 of 8")
    asgi_server.switch.refuse = True
    status_requests = []

    def no_status(page):
        page.route("**/status/", lambda route: (status_requests.append(route.request.url), route.abort()))

    page = open_label_page(browser, asgi_server, project, before=no_status)
    wait_online(page, online=False)
    assert status_requests  # the poll was tried and failed: only the embedded status is there
    text = indicator(page)
    assert "Training" in text and "40%" in text and "model v2" in text and "cuda" in text, text
    assert page.get_attribute("[data-trainer-status]", "data-phase") == "training"
    assert page.get_attribute("[data-trainer-status]", "title") == "Epoch 3 of 8"
    assert page.get_attribute("[data-ts=progress]", "aria-valuenow") == "40"
    assert page.get_attribute("[data-ts=version]", "title") == "full retrain, trained on 20 labels"
    assert page.evaluate("() => document.querySelector('[data-ts=bar]').style.width") == "40%"
    assert not page.is_visible("[data-ts=accuracy]") and not page.is_visible("[data-ts=error]")


def test_a_new_queue_replaces_the_prefetched_item(browser, asgi_server, project, bob, make_items):
    items = make_items(8)
    page = open_label_page(browser, asgi_server, project)
    wait_online(page)
    current, prefetched = page.evaluate("() => [window.labeler.current(), window.labeler.prefetched()]")
    assert current == shown_item(page) and prefetched not in (None, current)
    assert leased(project, bob) == {current, prefetched}

    # The trainer writes version 3 and its queue (items the page does not hold come first),
    # then announces it. The model is unsure about the new top item, so its runners-up show.
    others = [i for i in items if i.pk not in (current, prefetched)]
    top = others[0]
    probs = [[0.55, 0.30, 0.15] if i.pk == top.pk else [0.05, 0.05, 0.90] for i in sorted(items, key=lambda i: i.pool_index)]
    version = make_version(project, 3, items, probs=probs)
    for rank, item in enumerate(others + [i for i in items if i.pk in (current, prefetched)]):
        QueueEntry.objects.create(project=project, item=item, rank=rank, version=version)
    set_trainer(project, TrainerState.Phase.UP_TO_DATE, version=version)
    asgi_server.publish(project, events.queue_event(3))

    page.wait_for_function("() => window.labeler.refreshes() === 1")
    settle(page)
    # The image on screen is untouched; the prefetched lease was traded for the queue's top.
    assert shown_item(page) == current
    assert page.evaluate("() => window.labeler.prefetched()") == top.pk
    assert leased(project, bob) == {current, top.pk}
    assert Lease.objects.get(user=bob, item=top).model_version == version

    # Answering shows the new top item with version 3's guess; nothing is applied by itself.
    page.keyboard.press("2")
    page.wait_for_function(f"() => window.labeler.current() === {top.pk}")
    settle(page)
    assert page.inner_text("#guess").startswith("Model guess: zero 55%")
    assert page.is_visible("#guess-top")
    assert page.inner_text("#guess-top").replace("\n", " ") == "or maybe 2 one 30% 3 two 15%"
    assert not Annotation.objects.filter(item=top).exists()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-new-queue.png"))
    page.keyboard.press("a")
    page.wait_for_function("() => window.labeler.pending() === 0")
    answer = Annotation.objects.get(item=top, annotator=bob)
    assert answer.label.name == "zero"


def test_queue_event_waits_for_the_answer_in_flight(browser, asgi_server, project, bob, make_items):
    items = make_items(6)
    page = open_label_page(browser, asgi_server, project)
    wait_online(page)
    answered = shown_item(page)
    held = {answered, page.evaluate("() => window.labeler.prefetched()")}
    order = []
    page.route("**/label/answer/", lambda route: (order.append("answer"), time.sleep(0.5), route.continue_()))
    page.route("**/label/next/", lambda route: (order.append("next:" + (route.request.post_data or "")), route.continue_()))

    version = make_version(project, 2, items)
    rest = [i for i in items if i.pk not in held]
    for rank, item in enumerate(rest):
        QueueEntry.objects.create(project=project, item=item, rank=rank, version=version)
    page.keyboard.press("1")
    # the event must find the answer in flight: on a loaded machine the key can reach the
    # page after the event, and then the refresh rightly goes first
    page.wait_for_function("() => window.labeler.pending() > 0")
    asgi_server.publish(project, events.queue_event(2))
    page.wait_for_function("() => window.labeler.refreshes() === 1 && window.labeler.pending() === 0")
    settle(page)
    assert order[0] == "answer" and order[1].startswith("next:")
    assert Annotation.objects.get(item_id=answered, annotator=bob).label.name == "zero"
    # The refresh excluded the (new) current item and released the prefetched one.
    now_current = page.evaluate("() => window.labeler.current()")
    assert f"exclude={now_current}" in order[1] and "release=" in order[1]
    assert leased(project, bob) == {now_current, page.evaluate("() => window.labeler.prefetched()")}


def test_without_the_socket_the_page_labels_over_http_and_catches_up(browser, asgi_server, project, bob, make_items):
    items = make_items(8)
    set_trainer(project, TrainerState.Phase.TRAINING, progress=0.25)
    page = open_label_page(browser, asgi_server, project)
    wait_online(page)

    asgi_server.switch.refuse = True
    asgi_server.switch.drop_all()
    wait_online(page, online=False)
    assert page.is_visible("text=live updates paused — reconnecting")

    # Labeling goes on over plain HTTP.
    first = shown_item(page)
    page.keyboard.press("3")
    page.wait_for_function(f"() => window.labeler.current() !== {first} && window.labeler.pending() === 0")
    assert Annotation.objects.get(item_id=first, annotator=bob).label.name == "two"

    # The HTTP poll sees the trainer move on, and a new version means a missed queue event.
    settle(page)
    held = {page.evaluate("() => window.labeler.current()"), page.evaluate("() => window.labeler.prefetched()")}
    rest = [i for i in items if i.pk not in held and i.pk != first]
    version = make_version(project, 5, items)
    for rank, item in enumerate(rest):
        QueueEntry.objects.create(project=project, item=item, rank=rank, version=version)
    set_trainer(project, TrainerState.Phase.UP_TO_DATE, version=version)
    page.wait_for_function("() => document.querySelector('[data-trainer-status]').dataset.phase === 'up-to-date'")
    assert "model v5" in indicator(page)
    page.wait_for_function("() => window.labeler.refreshes() >= 1 && window.labeler.pending() === 0")
    settle(page)
    assert page.evaluate("() => window.labeler.prefetched()") == rest[0].pk
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-offline.png"))

    # The socket comes back: the note goes, and the page refreshes for what it missed.
    refreshes = page.evaluate("() => window.labeler.refreshes()")
    asgi_server.switch.refuse = False
    wait_online(page)
    page.wait_for_function(f"() => window.labeler.refreshes() > {refreshes}")
    assert not page.is_visible("[data-ts=offline]")
    settle(page)
    assert len(leased(project, bob)) == 2


def test_it_refuses_the_socket_to_an_outsider(browser, asgi_server, project, charlie):
    page = browser.new_page()
    page.goto(f"{asgi_server.url}/accounts/login/?next=/projects/")
    page.fill("input[name=username]", "charlie")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{asgi_server.url}/projects/")
    outcome = page.evaluate(
        """(pk) => new Promise((resolve) => {
             let opened = false;
             const ws = new WebSocket(`ws://${location.host}/ws/projects/${pk}/`);
             ws.onopen = () => (opened = true);
             ws.onmessage = (event) => { resolve({ opened, message: event.data }); ws.close(); };
             ws.onclose = () => resolve({ opened, message: null });
           })""",
        project.pk,
    )
    assert outcome == {"opened": False, "message": None}


def test_an_owners_edit_opens_the_instructions_on_an_open_page(browser, asgi_server, project, bob, make_items):
    from annotator.models import Membership
    from annotator.projects.instructions import update_instructions

    make_items(4)
    page = open_label_page(browser, asgi_server, project)
    wait_online(page)
    assert not page.is_visible("#instructions") and not page.is_visible("#instructions-button")
    update_instructions(project, markdown="Count only **whole** digits.")
    page.wait_for_selector("#instructions", state="visible")
    assert "whole" in page.inner_text("#instructions")
    assert page.is_visible("#instructions-button")
    assert Membership.objects.get(project=project, user=bob).instructions_seen == 1  # fetched: seen
    page.keyboard.press("1")  # class keys wait while they are open
    assert page.evaluate("() => window.labeler.pending()") == 0
    page.click("#instructions-close")
    assert not page.is_visible("#instructions")
    # A second edit replaces the overlay with the new version and opens it again.
    update_instructions(project, markdown="Second version.")
    page.wait_for_function("() => { const o = document.getElementById('instructions'); return o.dataset.version === '2' && !o.hidden; }")
    assert "Second version" in page.inner_text("#instructions")
    page.keyboard.press("Escape")
    page.keyboard.press("1")
    page.wait_for_function("() => window.labeler.pending() === 0")
    assert Annotation.objects.filter(annotator=bob).count() == 1
