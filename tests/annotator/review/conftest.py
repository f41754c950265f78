"""Review fixtures: rita, a reviewer of the Digits project (two answers per image wanted, so
answers can disagree), and erin, a second annotator."""
import itertools

import pytest
from django.contrib.auth import get_user_model

from annotator.labeling.answers import submit_annotation
from annotator.models import Role
from annotator.projects.changes import update_settings
from annotator.projects.members import add_member
from tests.conftest import PASSWORD

_keys = itertools.count()


@pytest.fixture
def rita(project):
    get_user_model().objects.create_user("rita", "rita@example.com", PASSWORD)
    add_member(project, "rita", Role.REVIEWER)
    return get_user_model().objects.get(username="rita")


@pytest.fixture
def erin(project):
    get_user_model().objects.create_user("erin", "erin@example.com", PASSWORD)
    add_member(project, "erin", Role.ANNOTATOR)
    return get_user_model().objects.get(username="erin")


@pytest.fixture
def two_per_item(project):
    update_settings(project, annotations_per_item=2)
    return project


@pytest.fixture
def answer():
    def give(project, user, item, label=None, **kind):
        return submit_annotation(project, user, item_id=item.pk, label=label, idempotency_key=f"k{next(_keys)}",
                                 **kind).annotation
    return give
