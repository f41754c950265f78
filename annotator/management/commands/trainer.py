"""`manage.py trainer`: run the model loop for any number of projects until SIGTERM/Ctrl+C.

Start as many as you like, on one machine or many (one per GPU): they share the projects
through leases in the database, and take over the projects of a trainer that died.
"""
import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from annotator.modelloop.trainer import Trainer


class Command(BaseCommand):
    help = "Train the projects' models in the background (pretraining, fast path, fine-tuning)."

    def add_arguments(self, parser):
        parser.add_argument("--project", action="append", dest="slugs", metavar="SLUG",
                            help="Only these projects (repeatable); default: every project with images.")
        parser.add_argument("--max-projects", type=int, default=None,
                            help="Hold at most this many projects at once (default: no limit).")
        parser.add_argument("--name", default=None, help="Name of this trainer in the leases (default host:pid).")
        parser.add_argument("--device", default=None,
                            help="torch device, e.g. cpu or cuda:1 (default: TORCH_DEVICE, else CUDA when present).")

    def handle(self, *args, slugs, max_projects, name, device, **options):
        if max_projects is not None and max_projects < 1:
            raise CommandError("--max-projects must be at least 1.")
        if device:
            from annotator.modelloop import bridge

            try:
                bridge.resolve_device(device)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        logging.getLogger("annotator").setLevel(logging.INFO)
        trainer = Trainer(name, slugs=slugs, max_projects=max_projects, device=device)

        def stop(signum, frame):
            self.stdout.write(f"Signal {signum}: finishing the current step and releasing the projects...")
            trainer.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Trainer {trainer.name} running (Ctrl+C to stop).")
        trainer.run()
        self.stdout.write("Trainer stopped.")
