"""`manage.py serve`: the embedded server (HTTP and websockets on one ASGI process), with
the model loop beside it.

The trainer runs in a child process by default (`--trainer process`, SERVE_TRAINER): the
child's live events travel over a multiprocessing queue and are relayed into this
process's channel layer on the server's event loop, so the in-memory layer works without
Redis. `--trainer thread` runs the loop in a thread of this process instead, and
`--trainer none` serves pages only (run `manage.py trainer` elsewhere).

The task worker of background jobs (`manage.py jobs_worker`) runs as another child by default
(`--worker process`, SERVE_WORKER); `--worker none` leaves it to a separate process.
`--workers N` (SERVE_WORKERS) runs N uvicorn worker processes on one listening socket
(uvicorn's supervisor restarts a worker that dies). Django gives each request a thread,
but Python runs one thread at a time per process (the GIL), so one process uses at most
one core; N processes use N. The trainer and the job worker are still started once, by
the supervising process. Workers must share the channel layer and the caches, so N > 1
needs REDIS_URL: the trainer then publishes to Redis too.
"""
import asyncio
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from uvicorn.supervisors import Multiprocess

from annotator import events
from annotator.management.worker_child import ChildWorker

log = logging.getLogger(__name__)
CHILD_RESTART_DELAY_S = 5


def _child_main(event_queue, parent):
    """Entry point of the trainer child process (spawned: a fresh interpreter). `parent` is
    the server's pid, passed in: it may already be gone when this process gets here.

    The server stops it with SIGTERM (a signal, not a multiprocessing.Event: setting an
    Event whose waiter died with this process, e.g. after a SIGTERM sent to the whole
    process group by `timeout` or a service manager, blocks the setter forever)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
    django.setup()
    from django.conf import settings

    from annotator.management.worker_child import lower_priority
    from annotator.modelloop.trainer import Trainer

    lower_priority(settings.SERVE_CHILD_NICE)  # the web workers come first on a shared core

    event_queue.cancel_join_thread()  # exiting never waits for a dead server to read events
    trainer = Trainer(publish=lambda pk, message: event_queue.put((pk, message)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *a: trainer.stop.set())

    def watch_parent():
        # stop when the server died without asking (killed): no orphan trainer
        while os.getppid() == parent and not trainer.stop.wait(1.0):
            pass
        trainer.stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    trainer.run()


def proxy_options(trusted_proxies):
    """uvicorn's proxy settings from TRUSTED_PROXIES: X-Forwarded-For and -Proto are read only
    from those addresses (the rule of annotator.accounts.client_address), and not at all when
    the list is empty."""
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted_proxies)}


class ChildTrainer:
    """Runs the trainer in a child process, restarts it if it dies, relays its events."""

    def __init__(self, publish):
        self.publish = publish
        self.ctx = multiprocessing.get_context("spawn")
        self.events = self.ctx.Queue()
        self.stopping = threading.Event()
        self.process = None

    def start(self):
        self._spawn()
        threading.Thread(target=self._relay, name="trainer-relay", daemon=True).start()
        threading.Thread(target=self._supervise, name="trainer-supervisor", daemon=True).start()

    def _spawn(self):
        self.process = self.ctx.Process(target=_child_main, args=(self.events, os.getpid()),
                                        name="trainer")
        self.process.start()
        log.info("Trainer child process %s started", self.process.pid)

    def _relay(self):
        while not self.stopping.is_set():
            try:
                pk, message = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            self.publish(pk, message)

    def _supervise(self):
        while not self.stopping.wait(1.0):
            if self.process is not None and not self.process.is_alive():
                log.error("Trainer child exited with code %s; restarting in %s s",
                          self.process.exitcode, CHILD_RESTART_DELAY_S)
                if self.stopping.wait(CHILD_RESTART_DELAY_S):
                    return
                self._spawn()

    def stop(self, timeout=20):
        self.stopping.set()
        if self.process is not None:
            if self.process.is_alive():
                self.process.terminate()  # SIGTERM: the child's handler stops the trainer
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)


class ThreadTrainer:
    def __init__(self, publish):
        from annotator.modelloop.trainer import Trainer

        self.trainer = Trainer(publish=publish)
        self.thread = threading.Thread(target=self.trainer.run, name="trainer", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self, timeout=20):
        self.trainer.stop.set()
        self.thread.join(timeout)


class Command(BaseCommand):
    help = "Serve the app (pages, REST API and websockets) with uvicorn, and run the model loop."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
        parser.add_argument(
            "--trainer", choices=["process", "thread", "none"], default=settings.SERVE_TRAINER,
            help="Where the model loop runs (default: SERVE_TRAINER, else a child process).",
        )
        parser.add_argument(
            "--worker", choices=["process", "none"], default=settings.SERVE_WORKER,
            help="Run the background-job worker as a child process (default: SERVE_WORKER, else process).",
        )

        parser.add_argument("--workers", type=int, default=settings.SERVE_WORKERS,
                            help="uvicorn worker processes (default: SERVE_WORKERS, else 1); more than 1 needs REDIS_URL.")

    def handle(self, *args, host, port, log_level, trainer, worker, workers, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                "--workers above 1 needs REDIS_URL: the worker processes must share the channel layer (live "
                "events) and the caches (throttles). Set REDIS_URL, or serve with one worker."
            )
        config = uvicorn.Config(
            "annotator.asgi:application",
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            ws="websockets-sansio",
            workers=workers,
            # uvloop's event loop and httptools' HTTP parser (C, both in requirements.txt) when
            # they import, else asyncio's loop and h11: "auto" falls back by itself.
            loop="auto",
            http="auto",
            **proxy_options(settings.TRUSTED_PROXIES),
        )
        self.stdout.write(f"Serving on http://{host}:{port}/ with {workers} worker{'s' if workers > 1 else ''}, "
                          f"the trainer: {trainer} and the job worker: {worker}  (Ctrl+C to stop)")
        self.runner = None
        self.worker = ChildWorker() if worker == "process" else None
        if self.worker is not None:
            self.worker.start()
        if workers > 1:
            try:
                self._supervise(config, trainer)
            finally:
                if self.worker is not None:
                    self.worker.stop()
            return
        server = uvicorn.Server(config)

        def terminate(signum, frame):
            raise KeyboardInterrupt  # uvicorn re-sends SIGTERM after its shutdown: stop the trainer too

        signal.signal(signal.SIGTERM, terminate)
        try:
            # The worker processes of `--workers N` get config's loop from uvicorn; this one too.
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(self._serve(server, trainer))
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the Ctrl+C / SIGINT it handled; the shutdown is clean
        finally:
            if self.worker is not None:
                self.worker.stop()
            if self.runner is not None:
                self.stdout.write("Stopping the trainer...")
                started = time.monotonic()
                self.runner.stop()
                self.stdout.write(f"Trainer stopped in {time.monotonic() - started:.1f} s.")

    def _supervise(self, config, mode):
        """N worker processes under uvicorn's supervisor (which handles SIGINT and SIGTERM
        by stopping them), and the trainer once, here; the layer is Redis (see handle)."""
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        if mode == "process":
            self.runner = ChildTrainer(events.publish)
        elif mode == "thread":
            self.runner = ThreadTrainer(None)
        try:
            if self.runner is not None:
                self.runner.start()
            supervisor.run()
        finally:
            if self.runner is not None:
                self.stdout.write("Stopping the trainer...")
                self.runner.stop()

    async def _serve(self, server, mode):
        loop = asyncio.get_running_loop()
        publish = events.loop_publisher(loop)
        if settings.CHANNEL_LAYERS["default"]["BACKEND"] != "channels.layers.InMemoryChannelLayer":
            publish = None  # Redis: the trainer publishes to the shared layer itself
        if mode == "process":
            self.runner = ChildTrainer(publish or (lambda pk, message: events.publish(pk, message)))
        elif mode == "thread":
            self.runner = ThreadTrainer(publish)
        if self.runner is not None:
            events.set_publisher(publish)
            self.runner.start()
        await server.serve()
