"""TRAINER_MAX_PROJECTS: a trainer holds at most that many projects; when full, the held project
labeled least recently is handed back to a waiting project someone is labeling now, so one
user's many projects cannot keep the trainer from everyone else's."""
import pytest

from annotator.labeling.leasing import lease_next
from annotator.modelloop.trainer import Trainer
from annotator.models import TrainerState
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def projects(alice, bob):
    made = []
    for i in range(3):
        project = create_project(alice, name=f"P{i}", classes=SHAPES)
        add_member(project, "bob", "annotator")
        add_shape_items(project, 2, seed=i)
        made.append(project)
    return made


def _trainer(**kwargs):
    return Trainer("t1", publish=lambda *a: None, **kwargs)


def test_the_setting_limits_the_projects_held(projects, settings):
    settings.TRAINER_MAX_PROJECTS = 2
    trainer = _trainer()
    assert trainer.max_projects == 2
    assert len(trainer.claim()) == 2
    assert trainer.claim() == []  # nobody labels the third: nothing is handed back
    assert len(trainer.held) == 2


def test_zero_means_no_limit(projects, settings):
    settings.TRAINER_MAX_PROJECTS = 0
    assert len(_trainer().claim()) == 3


def test_a_project_being_labeled_is_claimed_first(projects, bob, settings):
    settings.TRAINER_MAX_PROJECTS = 1
    lease_next(projects[2], bob)
    assert _trainer().claim() == [projects[2].pk]


def test_a_waiting_project_being_labeled_takes_the_slot_of_an_idle_one(projects, bob, settings):
    settings.TRAINER_MAX_PROJECTS = 2
    trainer = _trainer()
    held = trainer.claim()
    waiting = next(p for p in projects if p.pk not in held)
    lease_next(waiting, bob)  # someone starts labeling the waiting project
    lease_next(_project(projects, held[1]), bob)
    assert trainer.claim() == [waiting.pk]
    assert set(trainer.held) == {waiting.pk, held[1]}  # held[0] had no labeling: handed back
    state = TrainerState.objects.get(project_id=held[0])
    assert (state.owner, state.phase) == ("", "waiting")
    assert "TRAINER_MAX_PROJECTS" in state.detail
    assert trainer.claim() == []  # stable: the handed-back project is idle


def test_a_more_recently_labeled_held_project_is_kept(projects, bob, settings):
    settings.TRAINER_MAX_PROJECTS = 2
    trainer = _trainer()
    held = trainer.claim()
    waiting = next(p for p in projects if p.pk not in held)
    lease_next(waiting, bob)
    for pk in held:
        lease_next(_project(projects, pk), bob)  # both held projects labeled after it
    assert trainer.claim() == []
    assert set(trainer.held) == set(held)


def test_a_handed_back_project_can_come_back(projects, bob, settings):
    settings.TRAINER_MAX_PROJECTS = 2
    trainer = _trainer()
    held = trainer.claim()
    waiting = next(p for p in projects if p.pk not in held)
    lease_next(waiting, bob)
    lease_next(_project(projects, held[1]), bob)
    trainer.claim()
    lease_next(_project(projects, held[0]), bob)  # labeled again, most recently of all
    assert trainer.claim() == [held[0]]
    assert held[0] not in trainer.lost


def _project(projects, pk):
    return next(p for p in projects if p.pk == pk)
