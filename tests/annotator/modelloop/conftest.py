"""Fixtures of the web app's tests (the personas live in tests/conftest.py)."""
import pytest

from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items, fast_trainer_settings


@pytest.fixture
def shapes(alice, bob, settings):
    fast_trainer_settings(settings)
    project = create_project(alice, name="Shapes", classes=SHAPES, audit_fraction=0.0)
    add_member(project, "bob", "annotator")
    items, truth = add_shape_items(project, 60)
    project.truth = {item.pk: kind for item, kind in zip(items, truth)}
    return project
