"""Shared fixtures: the personas alice (owner), bob (annotator), charlie (outsider), and
small generated images."""
import io
import random

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from PIL import Image
from rest_framework.test import APIClient

from annotator.models import Role
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

pytest_plugins = ["tests.skipguard", "tests.s3"]  # --fail-on-skip / --allow-skip (CI); the moto S3 fixtures

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(1234)
    np.random.seed(1234)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache: each test starts from zero."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACTS_ROOT = tmp_path / "artifacts"


def _user(username):
    return get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def charlie(db):
    return _user("charlie")


@pytest.fixture
def dave(db):
    """A viewer."""
    return _user("dave")


@pytest.fixture
def project(alice, bob, dave):
    project = create_project(alice, name="Digits", classes=["zero", "one", "two"], audit_fraction=0.0)
    add_member(project, "bob", Role.ANNOTATOR)
    add_member(project, "dave", Role.VIEWER)
    return project


@pytest.fixture
def tags(alice, bob, dave):
    """A multi-label project: alice owns it, bob annotates, dave views."""
    project = create_project(alice, name="Tags", classes=["cat", "dog", "car"], audit_fraction=0.0, multi_label=True)
    add_member(project, "bob", Role.ANNOTATOR)
    add_member(project, "dave", Role.VIEWER)
    return project


def png_bytes(seed=0, size=(32, 24), mode="RGB", fmt="PNG"):
    """A small random image, different for each seed."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def make_items(project):
    """Create n items directly (bypassing import) for leasing tests."""
    from django.core.files.base import ContentFile

    from annotator.models import Item

    def make(n, target=None):
        target = target or project
        start = Item.objects.filter(project=target).count()
        items = []
        for i in range(start, start + n):
            item = Item(project=target, content_hash=f"{i:064x}", width=32, height=24, pool_index=i, priority=random.random())
            item.image.save(f"{i:064x}.png", ContentFile(png_bytes(i)), save=False)
            item.save()
            items.append(item)
        return items

    return make


def api_client(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    return api_client
