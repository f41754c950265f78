"""Schemathesis against the OpenAPI schema that /api/schema/ serves: every operation, with requests
generated from the schema (valid ones and deliberately invalid ones), sent in-process to
Django's WSGI application. No answer may be a server error, and every answer must match
the schema: a documented status code and content type, and a body of the documented shape.

The project under test has items, answers (live, skipped, corrected, undone), model
versions with their files (probabilities, checkpoint, embeddings) and four members. Most
generated requests are pointed at these rows (path parameters, item ids, class names,
usernames, a label CSV), so deep paths get past 404 and 400; the rest keep the generated
values. Requests come mostly from the owner, now and then from the annotator, the viewer,
an outsider or an anonymous caller.

Each operation is its own test, against a fresh database (the test transaction is rolled
back), so one operation's writes never starve another's.
"""
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotator.accounts.tokens import issue_token
from annotator.labeling.answers import submit_annotation, undo_last
from annotator.labeling.bulk import bulk_answer
from annotator.labeling.corrections import correct_annotation
from annotator.labeling.leasing import lease_next
from annotator.modelloop import predictions
from annotator.models import Item, ModelVersion, TrainerState
from tests.conftest import PASSWORD

pytestmark = pytest.mark.slow

# The owner reaches every operation; the others mostly meet refusals. None: no token.
PERSONAS = ["alice"] * 6 + ["bob", "dave", "charlie", None]
REAL_SHARE = 4  # out of 5 requests are pointed at real rows
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

def _schema_as_served():
    """What /api/schema/ serves, generated here: the schema is for signed-in callers only, and
    at collection there is no database to sign one in with."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    served = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(served)
    loaded.app = WSGIHandler()
    loaded.location = "/api/schema/"
    return loaded


# Loaded once, at collection: the schema does not depend on the data. (Schemathesis 4.32's
# fixture-based loader, schemathesis.pytest.from_fixture, does not run on pytest 9.2, and on
# pytest 9.2 the 25 operations share one test id: a failure names its operation in its title,
# and `-k` still selects by operation, e.g. -k "images".)
schema = _schema_as_served()


@pytest.fixture(autouse=True)
def _buckets_on_moto(s3):
    """Generated bucket-import URLs reach moto's S3 server (tests/s3.py), never AWS."""


@pytest.fixture(autouse=True)
def _fresh_predictions_cache():
    # Cached per ModelVersion pk, which the rolled-back test database hands out again.
    predictions._cache.clear()


@pytest.fixture
def _requests_inside_the_test_transaction():
    """Django's WSGI handler closes "old" connections when a request starts and ends; inside
    the test's transaction that would close the connection the test data lives in. Django's
    own test client disconnects the same receiver."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _model_version(project, number, kind):
    """A version with the files the trainer writes: probs.npy and pool_index.npy, and for a
    checkpoint version learner.pt and embeddings.npy."""
    folder = f"{project.pk}/v{number}"
    base = Path(settings.ARTIFACTS_ROOT) / folder
    base.mkdir(parents=True)
    pool_index = np.array(sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True)))
    probs = np.random.default_rng(number).dirichlet(np.ones(3), size=len(pool_index)).astype(np.float32)
    np.save(base / predictions.PROBS_FILE, probs)
    np.save(base / predictions.POOL_INDEX_FILE, pool_index)
    checkpoint = ""
    if kind != ModelVersion.Kind.FAST:
        (base / "learner.pt").write_bytes(b"weights" * 100)
        np.save(base / "embeddings.npy", np.ones((len(pool_index), 4), dtype=np.float32))
        checkpoint = f"{folder}/learner.pt"
    return ModelVersion.objects.create(
        project=project, number=number, kind=kind, classes=project.class_names(), artifact_dir=folder,
        checkpoint=checkpoint, pool_size=len(pool_index), labels_used=2, device="cpu",
        durations={"train": 1.5}, metrics={"loss": 0.5},
    )


def _answer(project, user, label=None, skip=False):
    lease = lease_next(project, user)
    key = f"{user.username}-{lease.item_id}"
    return submit_annotation(project, user, item_id=lease.item_id, label=label, skip=skip, idempotency_key=key)


def _label_csv(items, classes):
    rows = ["file,class"] + [f"{item.original_name},{classes[i % len(classes)]}" for i, item in enumerate(items)]
    rows += ["missing.png,zero", f"{items[0].content_hash},no-such-class", ","]
    return "\n".join(rows).encode()


@pytest.fixture
def world(project, make_items, alice, bob, charlie, dave):
    """Rows for the requests to point at, and a token per persona."""
    items = make_items(8)
    for i, item in enumerate(items):
        item.original_name = f"image-{i}.png"
        item.save(update_fields=["original_name"])
    slow = _model_version(project, 1, ModelVersion.Kind.SLOW)
    fast = _model_version(project, 2, ModelVersion.Kind.FAST)
    failed = ModelVersion.objects.create(project=project, kind=ModelVersion.Kind.SLOW, status="failed", error="Boom.")
    TrainerState.objects.create(project=project, current_version=fast)
    answers = [
        _answer(project, bob, "one").annotation,
        _answer(project, bob, skip=True).annotation,
        _answer(project, alice, "two").annotation,
    ]
    correct_annotation(project, answers[0].pk, "zero", by=alice)
    undone = _answer(project, bob, "two").annotation
    undo_last(project, bob)
    bulk = bulk_answer(project, bob, items=[item.pk for item in make_items(2)], label="one", idempotency_key="bulk")
    classes = project.class_names()
    users = ["alice", "bob", "dave", "charlie"]
    return {
        "tokens": {user.username: issue_token(user)[1] for user in (alice, bob, charlie, dave)},
        # Parameter or body field name -> real values.
        "values": {
            "id": [project.pk],
            "annotation_id": [a.pk for a in answers] + [undone.pk],
            "version_id": [slow.pk, fast.pk, failed.pk],
            "batch": [bulk.batch],
            "similar_to": [item.pk for item in items],
            "username": users,
            "password": [PASSWORD],
            "annotator": users,
            "item": [item.pk for item in items],
            "label": classes,
            "predicted": classes,
        },
        "label_csv": _label_csv(items, classes),
    }


def _point_at_rows(case, world, row):
    """Replace generated values by real ones wherever a parameter or a body field names a row."""
    body = case.body if isinstance(case.body, dict) else {}
    for values in (case.path_parameters, case.query, body):
        for name in set(values or ()) & set(world["values"]):
            choices = world["values"][name]
            values[name] = choices[row % len(choices)]
    if case.operation.path.endswith("/labels/import/") and "file" in body:
        body["file"] = world["label_csv"]


# derandomize: the same requests on every run. To explore, run it locally with a few hundred
# examples and derandomize=False (about 2 minutes).
@schema.parametrize()
@schema.given(persona=st.sampled_from(PERSONAS), real=st.integers(0, 4), row=st.integers(0, 99))
@hypothesis_settings(
    max_examples=20, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_operation_answers_with_a_server_error_or_off_schema(
    case, persona, real, row, world, _requests_inside_the_test_transaction
):
    if real < REAL_SHARE:
        _point_at_rows(case, world, row)
    headers = {"Authorization": f"Token {world['tokens'][persona]}"} if persona else {}
    case.call_and_validate(headers=headers, checks=CHECKS)

