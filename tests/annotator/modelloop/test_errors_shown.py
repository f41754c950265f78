"""A failed trainer run shows members one line; the traceback goes to the log only (issue 13,
finding 9): status (API, page, socket), versions and the pages never carry "Traceback"."""
import logging

import pytest
from asgiref.sync import async_to_sync

from annotator.modelloop import results
from annotator.modelloop.errors import MAX_ERROR_CHARS, one_line
from annotator.modelloop.project_loop import ProjectLoop
from annotator.models import ModelVersion, TrainerState

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/annotator/modelloop/project_loop.py", line 120, in step\n'
    "    self.model = bridge.build(project)\n"
    "RuntimeError: CUDA out of memory. Lower EMBED_BATCH_SIZE.\n"
)


def _explode():
    def inner():
        raise RuntimeError("propagation exploded\non two lines")

    try:
        inner()
    except RuntimeError as exc:
        return exc


def test_one_line_of_an_exception_and_of_a_stored_traceback():
    assert one_line(_explode()) == "RuntimeError: propagation exploded on two lines"
    assert one_line(TRACEBACK) == "RuntimeError: CUDA out of memory. Lower EMBED_BATCH_SIZE."
    assert one_line("Traceback (most recent call last):\n") == ""
    assert len(one_line("x" * 5000)) == MAX_ERROR_CHARS


@pytest.mark.django_db
def test_a_failure_stores_one_line_and_logs_the_traceback(project, caplog):
    TrainerState.objects.create(project=project, owner="t1")

    class FakeTrainer:
        name = "t1"

        def _publish_status(self, pk):
            pass

    loop = ProjectLoop(FakeTrainer(), project.pk)
    with caplog.at_level(logging.ERROR):
        loop.failed(_explode())
    failed = ModelVersion.objects.get(project=project, status="failed")
    state = TrainerState.objects.get(project=project)
    assert failed.error == state.last_error == "RuntimeError: propagation exploded on two lines"
    assert "Traceback" in caplog.text and "in inner" in caplog.text


@pytest.mark.django_db
def test_record_failure_never_stores_a_traceback(project):
    TrainerState.objects.create(project=project, owner="t1")
    results.record_failure(project, "t1", "fast", TRACEBACK, max_failures=1, backoff_s=1)
    assert ModelVersion.objects.get(project=project).error == "RuntimeError: CUDA out of memory. Lower EMBED_BATCH_SIZE."


@pytest.fixture
def failed_with_traceback(project):
    """Rows written before this fix: a traceback in the state and in a failed version."""
    ModelVersion.objects.create(project=project, kind="fast", status="failed", error=TRACEBACK)
    TrainerState.objects.create(project=project, phase=TrainerState.Phase.FAILED, last_error=TRACEBACK)
    return project


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["alice", "bob", "dave"])
def test_no_member_response_carries_a_traceback(failed_with_traceback, client, api, persona, request):
    project, user = failed_with_traceback, request.getfixturevalue(persona)
    status = api(user).get(f"/api/projects/{project.pk}/status/").json()
    assert status["error"] == "RuntimeError: CUDA out of memory. Lower EMBED_BATCH_SIZE."
    bodies = [
        api(user).get(f"/api/projects/{project.pk}/status/").content,
        api(user).get(f"/api/projects/{project.pk}/versions/").content,
        api(user).get(f"/api/projects/{project.pk}/versions/{project.model_versions.get().pk}/").content,
    ]
    client.force_login(user)
    for url in ("status/", "", "dashboard/", "label/", "settings/"):
        response = client.get(f"/projects/{project.pk}/{url}")
        assert response.status_code in (200, 403), url
        bodies.append(response.content)
    assert all(b"Traceback" not in body for body in bodies)
    assert all(b"project_loop.py" not in body for body in bodies)


@pytest.mark.django_db(transaction=True)
def test_the_socket_sends_one_line_too(failed_with_traceback, bob):
    from tests.annotator.live.test_consumers import _headers, _join

    headers = _headers(bob)

    async def scenario():
        socket, status = await _join(failed_with_traceback.pk, headers)
        await socket.disconnect()
        return status

    status = async_to_sync(scenario)()
    assert status["error"] == "RuntimeError: CUDA out of memory. Lower EMBED_BATCH_SIZE."
