"""Simulated annotators against a running server, and the check that nothing was lost.

Standard library only (http.client, threads), so it runs anywhere the app runs and talks
to the server exactly as any client does: over HTTP with API tokens. Each annotator loops
`POST next/` -> `POST annotations/` (the model's guess when there is one, else the first
class) with its own idempotency key per answer, until the deadline or the pool runs out.

Faults it plays and survives:
- `drop`: a fraction of answers are sent and then the connection is closed without reading
  the reply (a browser tab closed, a proxy timeout); the annotator sends the same answer
  with the same key again, as the labeling page does.
- connection errors, 5xx and 429 (a database restarting, a worker busy): retried with the
  same request after a short pause, until `retry_for` seconds have passed.

`verify` then reads every stored answer back (as the owner, through the API) and compares:
acknowledged == stored, no item answered twice, no item served to two annotators.

Used by `manage.py soak` and by the fault tests (tests/faults/).
"""
from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RETRY_STATUSES = {429, 500, 502, 503, 504}


class Unrecoverable(Exception):
    """A reply that retrying cannot fix (4xx other than 409/429), or retries ran out."""


@dataclass
class Tally:
    """What the annotators saw; merged over all threads."""
    latencies_ms: list = field(default_factory=list)  # next + answer, per acknowledged answer
    acked_at: list = field(default_factory=list)  # time.monotonic() of each acknowledgement, same order
    retried_at: list = field(default_factory=list)  # time.monotonic() of each retry (a timeline of an outage)
    acked: dict = field(default_factory=dict)  # idempotency key -> (user, item)
    served: list = field(default_factory=list)  # (user, item) for each new lease
    conflicts: int = 0  # 409: the server refused an answer (and said why)
    retries: Counter = field(default_factory=Counter)  # why a request was sent again
    drops: int = 0
    errors: list = field(default_factory=list)  # unrecoverable, with the reason
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def merge(self, other: Tally) -> None:
        with self.lock:
            self.latencies_ms += other.latencies_ms
            self.acked_at += other.acked_at
            self.retried_at += other.retried_at
            self.acked.update(other.acked)
            self.served += other.served
            self.conflicts += other.conflicts
            self.retries.update(other.retries)
            self.drops += other.drops
            self.errors += other.errors


class Client:
    """One annotator's HTTP connection (kept alive, reopened after any failure)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self.https = parts.scheme == "https"
        self.prefix = parts.path.rstrip("/")
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.timeout = timeout
        self.conn = None

    def _connection(self):
        if self.conn is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = kind(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        """(status, parsed JSON or None). Raises OSError/HTTPException on a broken connection."""
        conn = self._connection()
        try:
            conn.request(method, self.prefix + path, None if body is None else json.dumps(body), self.headers)
            reply = conn.getresponse()
            raw = reply.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if reply.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            return reply.status, (json.loads(raw) if raw else None)
        except ValueError:
            return reply.status, raw[:200].decode(errors="replace")

    def send_and_drop(self, method: str, path: str, body) -> None:
        """Send the request, then hang up without reading the reply."""
        conn = self._connection()
        try:
            conn.request(method, self.prefix + path, json.dumps(body), self.headers)
        except (OSError, http.client.HTTPException):
            pass
        self.close()


def call_with_retries(client: Client, tally: Tally, method: str, path: str, body, retry_for: float):
    """The reply of a request sent again (same body, same key) after connection errors,
    5xx and 429, for up to `retry_for` seconds."""
    give_up = time.monotonic() + retry_for
    pause = 0.05
    while True:
        try:
            status, data = client.call(method, path, body)
            if status not in RETRY_STATUSES:
                return status, data
            why = f"http {status}"
        except (OSError, http.client.HTTPException) as exc:
            why = type(exc).__name__
        tally.retries[why] += 1
        tally.retried_at.append(time.monotonic())
        if time.monotonic() > give_up:
            raise Unrecoverable(f"{method} {path}: still failing after {retry_for:.0f} s ({why})")
        time.sleep(pause)
        pause = min(1.0, pause * 2)


def annotate(base_url: str, token: str, username: str, project: int, classes: list, deadline: float,
             drop: float = 0.0, think: tuple = (0.0, 0.0), retry_for: float = 60.0, seed: int = 0,
             stagger: bool = False, combined: bool = False) -> Tally:
    """One annotator until `deadline` (time.monotonic()) or until nothing is left. With
    `stagger`, the first request waits a uniform 0..think[1] s, as if this annotator had been
    working already: annotators who think 1-3 s between answers reach the server spread over
    time, not all in the same instant (see `run`). With `combined`, each answer goes to
    `answer-and-next/`, whose reply carries the next item: one request per answer, `next/`
    only for the first item and after a refused answer."""
    rng = random.Random(seed)
    tally = Tally()
    client = Client(base_url, token)
    api = f"/api/projects/{project}"
    answer_path = f"{api}/answer-and-next/" if combined else f"{api}/annotations/"
    lease = None  # the item in hand, when the last answer brought it
    if stagger and think[1] > 0:
        time.sleep(min(rng.uniform(0, think[1]), max(0.0, deadline - time.monotonic())))
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if lease is None:
                status, lease = call_with_retries(client, tally, "POST", f"{api}/next/", {}, retry_for)
                if status == 204:
                    break
                if status != 200:
                    raise Unrecoverable(f"next: HTTP {status}: {lease}")
                tally.served.append((username, lease["id"]))
            item = lease["id"]
            guess = lease.get("suggestion")
            answer = {"item": item, "label": guess["label"] if guess else classes[0],
                      "idempotency_key": uuid.UUID(int=rng.getrandbits(128)).hex}
            if drop and rng.random() < drop:
                client.send_and_drop("POST", answer_path, answer)
                tally.drops += 1
            status, data = call_with_retries(client, tally, "POST", answer_path, answer, retry_for)
            lease = None
            if status in (200, 201):
                tally.acked[answer["idempotency_key"]] = (username, item)
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
                tally.acked_at.append(time.monotonic())
                if combined:
                    if data["next"] is None:
                        break
                    lease = data["next"]
                    tally.served.append((username, lease["id"]))
            elif status == 409:
                tally.conflicts += 1
            else:
                raise Unrecoverable(f"answer: HTTP {status}: {data}")
            if think[1] > 0:
                time.sleep(rng.uniform(*think))
    except Unrecoverable as exc:
        tally.errors.append(f"{username}: {exc}")
    finally:
        client.close()
    return tally


def run(base_url: str, project: int, classes: list, annotators: list, seconds: float, drop: float = 0.0,
        think: tuple = (0.0, 0.0), retry_for: float = 60.0, seed: int = 0, stagger: bool = False,
        combined: bool = False) -> Tally:
    """`annotators`: [(username, token)], each in its own thread, for `seconds`.

    Without `stagger` every annotator sends its first request in the same instant: with
    think time that first round is a burst of N simultaneous requests that a steady state
    never has (50 paced annotators: the first 50 answers took 1.4-1.8 s, the rest a p50 of
    120-200 ms), and it alone decides the p95 of a short run. `stagger` spreads the first
    requests over one think time (see `annotate`, which also says what `combined` does)."""
    total = Tally()
    deadline = time.monotonic() + seconds

    def one(i, username, token):
        total.merge(annotate(base_url, token, username, project, classes, deadline, drop, think, retry_for,
                             seed * 100_003 + i, stagger, combined=combined))

    threads = [threading.Thread(target=one, args=(i, u, t), daemon=True) for i, (u, t) in enumerate(annotators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + retry_for + 120)
    return total


def stored_answers(base_url: str, owner_token: str, project: int, retry_for: float = 60.0) -> list:
    """Every live answer of the project, read through the API as its owner (a page that
    fails with a 5xx, a 429 or a broken connection is asked again, for up to `retry_for` s)."""
    client = Client(base_url, owner_token, timeout=120)
    rows, page = [], 1
    try:
        while True:
            status, data = call_with_retries(client, Tally(), "GET",
                                             f"/api/projects/{project}/annotations/?page={page}&page_size=500",
                                             None, retry_for)
            if status != 200:
                raise Unrecoverable(f"reading the answers back: HTTP {status}: {data}")
            rows += data["results"]
            if not data.get("next"):
                return rows
            page += 1
    finally:
        client.close()


def verify(tally: Tally, stored: list) -> dict:
    """The invariants: every acknowledged answer stored (and nothing else), no item answered
    twice, no item served twice (to two annotators, or again after its answer)."""
    live = [r for r in stored if not r.get("skipped")]
    per_item = Counter(r["item"] for r in live)
    acked_items = Counter(item for _user, item in tally.acked.values())
    stored_items = set(per_item)
    serves = Counter(item for _user, item in tally.served)  # a new lease each loop
    return {
        "acknowledged": len(tally.acked),
        "stored": len(live),
        "lost": sorted(set(acked_items) - stored_items)[:20],
        "unacknowledged_stored": len(stored_items - set(acked_items)),
        "duplicates": sum(n - 1 for n in per_item.values() if n > 1),
        "acknowledged_twice": sum(n - 1 for n in acked_items.values() if n > 1),
        "served_twice": sum(1 for n in serves.values() if n > 1),
    }


def percentiles(values_ms: list) -> dict:
    if not values_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values_ms)

    def at(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 1)}
