"""The task worker as a child process of `manage.py serve` (the embedded default), like the
trainer: one command starts the pages, the model loop and the background jobs. Restarted if
it dies; stopped (current job finished, else interrupted and retried) with the server; stops
by itself when the server is killed."""
import logging
import multiprocessing
import os
import signal
import threading

log = logging.getLogger(__name__)
RESTART_DELAY_S = 5
STOP_GRACE_S = 20


def lower_priority(step):
    """Add `step` (SERVE_CHILD_NICE) to this process's niceness, capped at 19: the trainer's
    and the jobs' CPU-bound work then runs when the web workers leave a core free, instead of
    taking turns with them as equals. Returns the niceness now."""
    current = os.nice(0)
    return os.nice(max(0, min(19, current + step) - current))


def _child_main(parent):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    lower_priority(settings.SERVE_CHILD_NICE)

    def watch_parent():
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # the server died without asking: finish up and go

    threading.Thread(target=watch_parent, daemon=True).start()
    # db_worker's own handlers: the first SIGINT/SIGTERM finishes the current job, a second stops it.
    call_command("jobs_worker")


class ChildWorker:
    def __init__(self):
        self.ctx = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()
        self.process = None

    def start(self):
        self._spawn()
        threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True).start()

    def _spawn(self):
        self.process = self.ctx.Process(target=_child_main, args=(os.getpid(),), name="jobs-worker")
        self.process.start()
        log.info("Task worker child process %s started", self.process.pid)

    def _supervise(self):
        while not self.stopping.wait(1.0):
            if self.process is not None and not self.process.is_alive():
                log.error("Task worker child exited with code %s; restarting in %s s",
                          self.process.exitcode, RESTART_DELAY_S)
                if self.stopping.wait(RESTART_DELAY_S):
                    return
                self._spawn()

    def stop(self, timeout=STOP_GRACE_S):
        """SIGTERM (the worker finishes its job, or exits at once when idle), then a kill."""
        self.stopping.set()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
