"""Who may call which project URL: one table of outcomes for the owner (alice), an annotator
(bob), a viewer (dave), an outsider (charlie) and an anonymous caller, over every URL of the
project and every method each one serves.

`test_every_url_is_in_the_matrix` fails when a URL exists that MATRIX does not list (outside
the allow-list of URLs that are not about one project), so a new endpoint cannot ship
without someone deciding who may call it.

Adding an endpoint: add one Row per method to MATRIX below: the URL name as `reverse` takes
it ("api:project-..." for the router's routes), the method, the five outcomes in the order
owner, annotator, viewer, outsider, anonymous, and for a write a body that succeeds for a
caller who is allowed (so "allowed" means the request got past the permission check, not
that it failed validation). URL parameters are filled in from World.url_kwargs; a new
parameter name needs a value there.

Outcomes are classes, not bodies:
  OK     allowed: 2xx, or a redirect that is not to the sign-in page
  NO     forbidden: 403 (a member whose role does not allow it)
  HIDE   hidden: 404 (outsiders never learn that a project exists)
  LOGIN  pages: 302 to the sign-in page; API: 401 (TokenAuthentication comes first)
A refused request must leave the project as it was (checked on a snapshot of its rows).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from annotator.jobs.exports import start_export
from annotator.jobs.files import save_output
from annotator.labeling.answers import submit_annotation
from annotator.labeling.bulk import bulk_answer
from annotator.models import (
    Annotation,
    AnnotationChange,
    Item,
    Job,
    LabelClass,
    Lease,
    Membership,
    ModelVersion,
    Project,
    Review,
    Role,
    TrainerState,
)
from annotator.projects.changes import create_project
from annotator.projects.members import add_member
from tests.conftest import PASSWORD, png_bytes

OK, NO, HIDE, LOGIN = "allowed", "forbidden", "hidden", "login"
PERSONAS = ("owner", "annotator", "viewer", "outsider", "anonymous")


# --- request bodies (values may be callables of the World, resolved per request) -----------


def _resolve(data, world):
    return {key: value(world) if callable(value) else value for key, value in data.items()}


def api_json(**data):
    return lambda world: {"data": _resolve(data, world), "format": "json"}


def api_multipart(**data):
    return lambda world: {"data": _resolve(data, world), "format": "multipart"}


def form(**data):
    return lambda world: {"data": _resolve(data, world)}


def query(**data):
    """Query parameters of a GET."""
    return lambda world: {"data": _resolve(data, world)}


def script(**data):
    """A form post from static/js/label.js, which asks for JSON instead of a redirect."""
    return lambda world: {"data": _resolve(data, world), "HTTP_ACCEPT": "application/json"}


def open_item(world):
    return world.open_item.pk


def png_file(world):
    return SimpleUploadedFile("matrix.png", png_bytes(99), content_type="image/png")


def bucket_url(world):
    """A bucket (moto's S3 server, started only for these rows) holding one new image."""
    s3 = world.request.getfixturevalue("s3")
    s3.put("m/one.png", png_bytes(98))
    return f"s3://{s3.name}/m/"


def labels_csv(world):
    body = f"file,class\n{world.open_item.content_hash},two\n".encode()
    return SimpleUploadedFile("labels.csv", body, content_type="text/csv")


def labelstudio_json(world):
    tasks = [{"data": {"image": "/data/upload/1/x.png", "sha256": world.open_item.content_hash},
              "annotations": [{"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                           "value": {"choices": ["two"]}}]}]}]
    return SimpleUploadedFile("tasks.json", json.dumps(tasks).encode(), content_type="application/json")


def suggestions_csv(world):
    body = f"file,class,score\n{world.open_item.content_hash},two,0.7\n".encode()
    return SimpleUploadedFile("guesses.csv", body, content_type="text/csv")


def checkpoint_file(world):
    """A real checkpoint of our format for a small encoder, so an allowed upload succeeds."""

    from mlcore.checkpoint import save_checkpoint
    from mlcore.models.encoders import build_encoder
    from mlcore.presets import recommended_config

    cfg = recommended_config(3, 20, 1)
    path = world.tmp / "matrix.pt"
    if not path.exists():
        save_checkpoint(str(path), cfg, {"encoder": build_encoder(cfg.encoder).state_dict()}, {}, {})
    return SimpleUploadedFile("matrix.pt", path.read_bytes(), content_type="application/octet-stream")


ADD_CHARLIE = {"username": "charlie", "role": "viewer"}
SETTINGS_FORM = form(name="Renamed", strategy="auto", query_batch_size=10, audit_fraction=0.0, annotations_per_item=1)


class Row(NamedTuple):
    name: str
    method: str
    owner: str
    annotator: str
    viewer: str
    outsider: str
    anonymous: str
    body: Callable | None = None


# --- the matrix ----------------------------------------------------------------------------
# Detail routes act on: member "erin" (an annotator), bob's annotation on a labeled item, the
# unused class "two", model version 1, and an item. See World.

MATRIX = [
    # URL name                          method    owner annot. viewer outsider anonymous  body
    # --- API: project-scoped routes of the router ---
    Row("api:project-detail",           "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-members",          "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-members",          "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json(**ADD_CHARLIE)),
    Row("api:project-member",           "PATCH",  OK,   NO,   NO,   HIDE, LOGIN, api_json(role="viewer")),
    Row("api:project-member",           "DELETE", OK,   NO,   NO,   HIDE, LOGIN),
    Row("api:project-images",           "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_multipart(file=png_file)),
    Row("api:project-label-import",     "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_multipart(file=labels_csv)),
    Row("api:project-labelstudio-import", "POST", OK,   NO,   NO,   HIDE, LOGIN,
        api_multipart(file=labelstudio_json)),
    Row("api:project-suggestion-import", "POST",  OK,   NO,   NO,   HIDE, LOGIN,
        api_multipart(file=suggestions_csv)),
    Row("api:project-bucket-import",    "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json(url=bucket_url)),
    Row("api:project-next",             "POST",   OK,   OK,   NO,   HIDE, LOGIN, api_json()),
    Row("api:project-answer-and-next",  "POST",   OK,   OK,   NO,   HIDE, LOGIN,
        api_json(item=open_item, label="two", idempotency_key="matrix-and-next")),
    Row("api:project-annotations",      "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-annotations",      "POST",   OK,   OK,   NO,   HIDE, LOGIN,
        api_json(item=open_item, label="two", idempotency_key="matrix")),
    Row("api:project-annotations-undo", "POST",   OK,   OK,   NO,   HIDE, LOGIN),
    Row("api:project-annotations-bulk", "POST",   OK,   OK,   NO,   HIDE, LOGIN,
        api_json(items=lambda world: [world.open_item.pk], label="two", idempotency_key="matrix-bulk")),
    Row("api:project-annotations-bulk-candidates", "GET", OK, OK, NO, HIDE, LOGIN, query(label="two")),
    # A batch is undone by its author (bob) or an owner.
    Row("api:project-annotations-bulk-undo", "POST", OK, OK, NO,  HIDE, LOGIN),
    Row("api:project-annotation",       "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-annotation",       "PATCH",  OK,   NO,   NO,   HIDE, LOGIN, api_json(label="two")),
    Row("api:project-annotation",       "DELETE", OK,   NO,   NO,   HIDE, LOGIN),
    Row("api:project-stats",            "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-status",           "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-settings",         "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-settings",         "PATCH",  OK,   NO,   NO,   HIDE, LOGIN, api_json(name="Renamed")),
    Row("api:project-instructions",     "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-instructions",     "PATCH",  OK,   NO,   NO,   HIDE, LOGIN, api_json(markdown="Be careful.")),
    Row("api:project-items",            "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-versions",         "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-version",          "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("api:project-dashboard",        "GET",    OK,   NO,   OK,   HIDE, LOGIN),
    Row("api:project-item-review",      "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json(label="two")),
    # Reviewing: owners and reviewers (access.REVIEW_ROLES; tests/annotator/api/test_review.py has a reviewer).
    Row("api:project-review-next",      "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json()),
    Row("api:project-reviews",          "POST",   OK,   NO,   NO,   HIDE, LOGIN,
        api_json(item=lambda world: world.item.pk, verdict="accept")),
    Row("api:project-model-reset",      "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json()),
    Row("api:project-model-checkpoint", "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_multipart(checkpoint=checkpoint_file)),
    # Background jobs: owners only (they start imports and export files; a job's file is theirs).
    Row("api:project-jobs",             "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    Row("api:project-jobs",             "POST",   OK,   NO,   NO,   HIDE, LOGIN, api_json(format="csv")),
    Row("api:project-job",              "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    Row("api:project-job-download",     "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    # Every member may export: the labels are their own work (README, Export).
    Row("api-project-export",           "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    # --- pages (session; anonymous users go to the sign-in page) ---
    Row("project-detail",               "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("project-members",              "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(**ADD_CHARLIE)),
    Row("member-role",                  "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(role="viewer")),
    Row("member-remove",                "POST",   OK,   NO,   NO,   HIDE, LOGIN),
    Row("project-import",               "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(file=png_file)),
    Row("project-bucket-import",        "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(url=bucket_url)),
    Row("project-settings",             "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("project-settings",             "POST",   OK,   NO,   NO,   HIDE, LOGIN, SETTINGS_FORM),
    Row("class-add",                    "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(name="three")),
    Row("class-none",                   "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(name="none")),
    Row("class-rename",                 "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(name="deux")),
    Row("class-move",                   "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(direction="up")),
    Row("class-remove",                 "POST",   OK,   NO,   NO,   HIDE, LOGIN),
    Row("project-instructions",         "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(markdown="Be careful.")),
    Row("label-import",                 "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(file=labels_csv)),
    Row("labelstudio-import",           "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(file=labelstudio_json)),
    Row("suggestion-import",            "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(file=suggestions_csv)),
    Row("project-status",               "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("model-pause",                  "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(paused="1")),
    Row("model-reset",                  "POST",   OK,   NO,   NO,   HIDE, LOGIN, form()),
    Row("model-checkpoint",             "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(checkpoint=checkpoint_file)),
    Row("model-encoder",                "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(encoder="self-supervised")),
    Row("item-review",                  "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(label="two")),
    # Annotators see their own progress on the project page, not everyone's (access.DASHBOARD_ROLES).
    Row("project-dashboard",            "GET",    OK,   NO,   OK,   HIDE, LOGIN),
    Row("review",                       "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    Row("review-verdict",               "POST",   OK,   NO,   NO,   HIDE, LOGIN,
        form(item=lambda world: world.item.pk, verdict="accept")),
    Row("label",                        "GET",    OK,   OK,   NO,   HIDE, LOGIN),
    Row("label-next",                   "POST",   OK,   OK,   NO,   HIDE, LOGIN, script()),
    Row("label-answer",                 "POST",   OK,   OK,   NO,   HIDE, LOGIN,
        script(item=open_item, label="two", idempotency_key="matrix")),
    Row("label-undo",                   "POST",   OK,   OK,   NO,   HIDE, LOGIN, script()),
    Row("label-instructions",           "GET",    OK,   OK,   NO,   HIDE, LOGIN),
    Row("bulk",                         "GET",    OK,   OK,   NO,   HIDE, LOGIN, query(label="two")),
    Row("project-export",               "GET",    OK,   OK,   OK,   HIDE, LOGIN),
    Row("project-jobs",                 "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    Row("project-export-job",           "POST",   OK,   NO,   NO,   HIDE, LOGIN, form(format="csv")),
    Row("project-job-download",         "GET",    OK,   NO,   NO,   HIDE, LOGIN),
    # An <img> cannot follow a sign-in redirect: anonymous callers get the outsiders' 404.
    Row("item-image",                   "GET",    OK,   OK,   OK,   HIDE, HIDE),
]

# URLs that are not about one project, so the matrix leaves them out (each has its own tests).
NOT_PROJECT_SCOPED_NAMES = {
    "home",  # redirect to the project list
    "login", "logout", "password_change", "password_change_done", "account", "token-revoke",  # accounts
    "project-list", "project-create",  # the caller's projects, and a new one
    "api:project-list",  # the same over the API (GET list, POST create)
    "api:token", "api:schema", "api:docs",  # sign-in and the API's description
    "api:tokens", "api:token-detail",  # the caller's own tokens (tests/annotator/api/test_auth.py)
    "api:encoders",  # the encoders a project can use (tests/annotator/api/test_encoders.py)
    "api:no-such-endpoint",  # the JSON 404 for every other path under /api/
    "healthz", "readyz",  # probes, open to anyone (tests/annotator/operations/test_health.py)
}
NOT_PROJECT_SCOPED_PREFIXES = (
    "admin/",  # the Django admin, staff only
    "static/", "media/",  # files, when DEBUG serves them
)

# Objects of a project named by other URL parameters: requests naming them under another
# project (of which the caller is the owner) must 404 as well.
OBJECT_PARAMETERS = {"batch", "annotation_id", "version_id", "username", "member_pk", "class_pk", "item_pk", "item_id",
                     "job_id"}


# --- the URL patterns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    key: str  # the namespaced name, or the route for an unnamed pattern
    route: str
    parameters: frozenset
    callback: Callable


def walk(patterns, prefix="", namespace="", groups=frozenset()):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        found = groups | set(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = namespace + (f"{entry.namespace}:" if entry.namespace else "")
            yield from walk(entry.url_patterns, route, inner, frozenset(found))
        else:
            key = namespace + entry.name if entry.name else route
            yield Pattern(key, route, frozenset(found - {"format"}), entry.callback)


@functools.cache
def url_patterns():
    """Every pattern by key; format-suffix duplicates share their route's name, so they fold."""
    patterns = {}
    for pattern in walk(get_resolver().url_patterns):
        patterns.setdefault(pattern.key, pattern)
    return patterns


def _project_scoped(pattern):
    return pattern.key not in NOT_PROJECT_SCOPED_NAMES and not pattern.route.startswith(NOT_PROJECT_SCOPED_PREFIXES)


def _served_methods(callback):
    """The methods a view answers, where the view says: a DRF viewset route's actions, a
    class-based view's handlers, or Django's require_http_methods family (read from its
    closure). None for a plain function view that takes any method."""
    if getattr(callback, "actions", None):
        return {method.upper() for method in callback.actions} - {"HEAD", "OPTIONS"}
    view_class = getattr(callback, "view_class", None)
    if view_class is not None:
        handlers = [m for m in view_class.http_method_names if m not in ("head", "options") and hasattr(view_class, m)]
        return {m.upper() for m in handlers}
    function = callback
    while function is not None:
        code = getattr(function, "__code__", None)
        if code is not None and "request_method_list" in code.co_freevars:
            cell = function.__closure__[code.co_freevars.index("request_method_list")]
            return set(cell.cell_contents) - {"HEAD", "OPTIONS"}
        function = getattr(function, "__wrapped__", None)
    return None


def _pattern(name):
    pattern = url_patterns().get(name)
    assert pattern is not None, f"MATRIX names {name!r}, which is no URL name of the project"
    return pattern


def _is_api(name):
    return _pattern(name).route.startswith("api/")


# --- the world each case runs in -----------------------------------------------------------


@dataclass
class World:
    project: Project
    users: dict
    erin_membership: Membership
    annotation: Annotation
    version: ModelVersion
    spare_class: LabelClass
    item: Item
    open_item: Item
    batch: str = ""  # bob's bulk batch
    tmp: object = None
    request: object = None  # pytest's, for fixtures only some rows need
    job: object = None

    def url_kwargs(self):
        return {
            "pk": self.project.pk,
            "annotation_id": self.annotation.pk,
            "version_id": self.version.pk,
            "username": "erin",
            "member_pk": self.erin_membership.pk,
            "class_pk": self.spare_class.pk,
            "item_pk": self.item.pk,
            "item_id": self.item.pk,  # the API's name for it
            "batch": self.batch,
            "job_id": self.job.pk,
        }

    def url(self, name, project=None):
        pattern = _pattern(name)
        values = self.url_kwargs()
        unknown = pattern.parameters - set(values)
        assert not unknown, f"{pattern.route}: add a value for {sorted(unknown)} to World.url_kwargs"
        kwargs = {parameter: values[parameter] for parameter in pattern.parameters}
        if project is not None:
            kwargs["pk"] = project.pk
        return reverse(name, kwargs=kwargs)

    def client(self, persona, *, api):
        user = self.users[persona]
        if api:
            client = APIClient()
            if user is not None:
                client.force_authenticate(user)
        else:
            client = Client()
            if user is not None:
                client.force_login(user)
        return client


@pytest.fixture
def world(project, alice, bob, charlie, dave, make_items, tmp_path, request):
    """The project with something for every detail route: a fifth member (erin, whom the
    member routes change, so no persona acts on itself), an answer each from alice and bob
    (so both can undo), an open item, an unused class and a model version."""
    get_user_model().objects.create_user("erin", "erin@example.com", PASSWORD)
    erin = add_member(project, "erin", Role.ANNOTATOR)
    labeled, bobs, still_open = make_items(3)
    submit_annotation(project, alice, item_id=labeled.pk, label="zero", idempotency_key="alice-1")
    answer = submit_annotation(project, bob, item_id=bobs.pk, label="one", idempotency_key="bob-1")
    bulk = bulk_answer(project, bob, items=[make_items(1)[0].pk], label="one", idempotency_key="bob-bulk")
    version = ModelVersion.objects.create(project=project, number=1, kind="fast", labels_used=2, pool_size=3)
    return World(
        project=project,
        users={"owner": alice, "annotator": bob, "viewer": dave, "outsider": charlie, "anonymous": None},
        erin_membership=erin,
        annotation=answer.annotation,
        version=version,
        spare_class=project.classes.get(name="two"),
        item=labeled,
        open_item=still_open,
        batch=bulk.batch,
        tmp=tmp_path,
        request=request,
        job=_finished_export(project, alice),
    )


def _finished_export(project, owner):
    """An export job that has succeeded, with its file in storage."""
    job = start_export(project, user=owner, fmt="csv")
    name = save_output(job, "matrix.csv", [b"file,class\n"])
    Job.objects.filter(pk=job.pk).update(status="succeeded", result={"file": name, "filename": "matrix.csv"})
    return job


# --- running one request -------------------------------------------------------------------


def _outcome(response):
    code = response.status_code
    if code == 401:
        return LOGIN
    if 300 <= code < 400:
        return LOGIN if response["Location"].startswith(reverse("login")) else OK
    return {403: NO, 404: HIDE}.get(code, OK if 200 <= code < 300 else f"status {code}")


def _body_text(response):
    """What the response said (for the failure message). A stream is read to its end, which
    closes it; closing a response by hand would fire request_finished, and that closes the
    test's database connection."""
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return data[:300].decode("utf-8", "replace")


def _request(world, row, persona, *, project=None):
    client = world.client(persona, api=_is_api(row.name))
    url = world.url(row.name, project)
    kwargs = row.body(world) if row.body else {}
    response = getattr(client, row.method.lower())(url, **kwargs)
    return f"{row.method} {url}", response


def _snapshot(project):
    """The project's rows that any endpoint in the matrix could change."""
    annotations = Annotation.objects.filter(item__project=project).order_by("pk")
    return {
        "project": Project.objects.filter(pk=project.pk).values().get(),
        "classes": list(project.classes.order_by("pk").values_list("pk", "name", "order", "hotkey")),
        "members": list(Membership.objects.filter(project=project).order_by("pk").values_list("user_id", "role")),
        "items": list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "label_count", "done")),
        "annotations": list(annotations.values_list("pk", "label_id", "undone", "skipped")),
        "reviews": list(Review.objects.filter(project=project).values_list("item_id", "verdict")),
        "reviewed": list(Item.objects.filter(project=project, reviewed_at__isnull=False).values_list("pk")),
        "changes": AnnotationChange.objects.filter(annotation__item__project=project).count(),
        "leases": list(Lease.objects.filter(project=project).order_by("pk").values_list("item_id", "user_id")),
        "versions": list(ModelVersion.objects.filter(project=project).order_by("pk").values()),
        "trainer": list(TrainerState.objects.filter(project=project).values()),
        "jobs": list(Job.objects.filter(project=project).order_by("pk").values_list("pk", "status")),
    }


def _cases():
    for row in MATRIX:
        for persona in PERSONAS:
            test_id = f"{row.name.replace(':', '-')}-{row.method}-{persona}"
            yield pytest.param(row, persona, id=test_id)


@pytest.mark.parametrize("row, persona", list(_cases()))
def test_matrix(world, row, persona):
    expected = getattr(row, persona)
    before = None if expected == OK else _snapshot(world.project)
    request, response = _request(world, row, persona)
    got, code, text = _outcome(response), response.status_code, _body_text(response)
    assert got == expected, f"{request} as {persona}: expected {expected}, got {got} ({code}): {text}"
    if before is not None:
        assert _snapshot(world.project) == before, f"{request} as {persona} was refused but changed the project"


def _object_rows():
    for row in MATRIX:
        pattern = url_patterns().get(row.name)  # a stale name is test_the_matrix_names_only_...'s to report
        if pattern is not None and pattern.parameters & OBJECT_PARAMETERS:
            yield pytest.param(row, id=f"{row.name.replace(':', '-')}-{row.method}")


@pytest.mark.parametrize("row", list(_object_rows()))
def test_objects_of_another_project_are_hidden(world, row):
    """An owner of project B cannot reach project A's answers, versions, members, classes or
    images by putting their ids under B's URL."""
    other = create_project(world.users["outsider"], name="Other", classes=["zero", "one", "two"])
    before = _snapshot(world.project)
    request, response = _request(world, row, "outsider", project=other)
    got, code, text = _outcome(response), response.status_code, _body_text(response)
    assert got == HIDE, f"{request} as the owner of project {other.pk}: expected hidden, got {got} ({code}): {text}"
    assert _snapshot(world.project) == before


# --- the matrix covers the project ---------------------------------------------------------


def test_every_url_is_in_the_matrix():
    listed = {row.name for row in MATRIX}
    missing = [
        f"{pattern.key} ({pattern.route})"
        for pattern in url_patterns().values()
        if _project_scoped(pattern) and pattern.key not in listed
    ]
    assert not missing, (
        "URLs without rows in MATRIX (tests/annotator/test_permission_matrix.py): add a Row per method "
        "saying who may call them, or, if they are not about one project, add them to the allow-list: "
        + ", ".join(missing)
    )


def test_the_matrix_names_only_existing_project_urls():
    patterns = url_patterns()
    stale = sorted({row.name for row in MATRIX if row.name not in patterns})
    assert not stale, f"MATRIX rows for URLs that no longer exist: {stale}"
    allow_listed = sorted({row.name for row in MATRIX if not _project_scoped(patterns[row.name])})
    assert not allow_listed, f"MATRIX rows for allow-listed URLs: {allow_listed}"


def test_the_matrix_lists_each_method_a_view_serves():
    """For views that declare their methods (router actions, class-based views,
    require_POST/require_GET), the matrix lists exactly those; plain function views take any
    method, and their rows list the ones the view is written for."""
    rows = {}
    for row in MATRIX:
        rows.setdefault(row.name, []).append(row.method)
    duplicates = {name: methods for name, methods in rows.items() if len(methods) != len(set(methods))}
    assert not duplicates, f"MATRIX lists a method twice: {duplicates}"
    wrong = {}
    for name, methods in rows.items():
        pattern = url_patterns().get(name)
        served = _served_methods(pattern.callback) if pattern else None
        if served is not None and served != set(methods):
            wrong[name] = f"serves {sorted(served)}, MATRIX lists {sorted(methods)}"
    assert not wrong, f"MATRIX rows do not match the methods the views serve: {wrong}"
