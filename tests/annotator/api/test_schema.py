"""The OpenAPI schema at /api/schema/ and the Swagger UI at /api/docs/ (local files only)."""
import re

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

PATHS = {
    "/api/auth/token/": {"post"},
    "/api/tokens/": {"get"},
    "/api/tokens/{token_id}/": {"delete"},
    "/api/encoders/": {"get"},
    "/api/projects/": {"get", "post"},
    "/api/projects/{id}/": {"get"},
    "/api/projects/{id}/members/": {"get", "post"},
    "/api/projects/{id}/members/{username}/": {"patch", "delete"},
    "/api/projects/{id}/images/": {"post"},
    "/api/projects/{id}/bucket-import/": {"post"},
    "/api/projects/{id}/items/": {"get"},
    "/api/projects/{id}/labels/import/": {"post"},
    "/api/projects/{id}/labels/import-labelstudio/": {"post"},
    "/api/projects/{id}/suggestions/import/": {"post"},
    "/api/projects/{id}/next/": {"post"},
    "/api/projects/{id}/answer-and-next/": {"post"},
    "/api/projects/{id}/annotations/": {"get", "post"},
    "/api/projects/{id}/annotations/{annotation_id}/": {"get", "patch", "delete"},
    "/api/projects/{id}/annotations/undo/": {"post"},
    "/api/projects/{id}/annotations/bulk/": {"post"},
    "/api/projects/{id}/annotations/bulk/candidates/": {"get"},
    "/api/projects/{id}/annotations/bulk/{batch}/undo/": {"post"},
    "/api/projects/{id}/stats/": {"get"},
    "/api/projects/{id}/status/": {"get"},
    "/api/projects/{id}/settings/": {"get", "patch"},
    "/api/projects/{id}/instructions/": {"get", "patch"},
    "/api/projects/{id}/versions/": {"get"},
    "/api/projects/{id}/versions/{version_id}/": {"get"},
    "/api/projects/{id}/export/": {"get"},
    "/api/projects/{id}/jobs/": {"get", "post"},
    "/api/projects/{id}/jobs/{job_id}/": {"get"},
    "/api/projects/{id}/jobs/{job_id}/download/": {"get"},
    "/api/projects/{id}/dashboard/": {"get"},
    "/api/projects/{id}/items/{item_id}/review/": {"post"},
    "/api/projects/{id}/model/reset/": {"post"},
    "/api/projects/{id}/model/checkpoint/": {"post"},
    "/api/projects/{id}/review/next/": {"post"},
    "/api/projects/{id}/reviews/": {"post"},
}


def _schema(client):
    client = APIClient()
    client.force_authenticate(get_user_model()(username="reader"))  # signed in; no row needed
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    return r.json()


def test_it_lists_every_endpoint(client):
    schema = _schema(client)
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()} == PATHS


def test_it_documents_token_auth_and_the_special_responses(client):
    schema = _schema(client)
    token = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (token["type"], token["in"], token["name"]) == ("apiKey", "header", "Authorization")
    next_op = schema["paths"]["/api/projects/{id}/next/"]["post"]
    assert "204" in next_op["responses"]
    assert {"tokenAuth": []} in next_op["security"]
    answer = schema["paths"]["/api/projects/{id}/annotations/"]["post"]
    assert {"200", "201", "400", "409"} <= set(answer["responses"])
    body = answer["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][body]["properties"]) == {
        "item", "label", "labels", "skip", "unsure", "idempotency_key", "duration_ms",
    }
    upload = schema["paths"]["/api/projects/{id}/images/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method != "parameters":
                yield f"{method.upper()} {path}", operation


def test_it_documents_the_refusals_every_operation_can_give(client):
    # Found by schemathesis (test_api_schemathesis.py): answers the schema did not list.
    schema = _schema(client)
    for label, operation in _operations(schema):
        if {"tokenAuth": []} in operation.get("security", []):
            assert "401" in operation["responses"], label
        if "requestBody" in operation:
            assert "415" in operation["responses"], label
    for path in ("/api/projects/", "/api/projects/{id}/items/", "/api/projects/{id}/annotations/"):
        assert "404" in schema["paths"][path]["get"]["responses"], f"{path}?page=999"


@pytest.mark.parametrize(
    "body",
    [
        {"detail": "A project needs a name."},
        {"name": ["This field is required."], "classes": ["Ensure this field has at least 2 elements."]},
        {"non_field_errors": ["Send at least one of: name, strategy."]},
        {"classes": [{}, {"name": ["This field may not be blank."]}]},
        {"exclude": {"0": ["A valid integer is required."]}},
    ],
)
def test_it_documents_validation_errors_per_field(client, body):
    schema = _schema(client)
    invalid = schema["paths"]["/api/projects/{id}/settings/"]["patch"]["responses"]["400"]
    jsonschema.validate(body, invalid["content"]["application/json"]["schema"])


def test_ids_in_paths_are_positive_64_bit_integers(client):
    schema = _schema(client)
    for label, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("id"):
                assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (1, 2**63 - 1), label


def test_it_generates_without_warnings(tmp_path, settings):
    # Raises SystemExit on any warning or on a schema that fails OpenAPI validation.
    call_command("spectacular", validate=True, fail_on_warn=True, file=str(tmp_path / "schema.yml"))
    assert "/api/projects/{id}/next/" in (tmp_path / "schema.yml").read_text()


def test_the_docs_page_loads_only_local_files(client, alice):
    client.force_login(alice)
    r = client.get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert any("swagger-ui" in u for u in urls)
    assert not re.search(r"https?://", " ".join(urls))
    assert not re.search(r"""["']https?://[^"']*\.(?:js|css)""", html)
    assert all(u.startswith("/static/") for u in urls if u.endswith((".js", ".css")))


@pytest.mark.django_db
def test_the_schema_needs_a_sign_in(client, api, alice):
    assert client.get("/api/schema/").status_code == 401
    assert api(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").status_code == 200


@pytest.mark.django_db
def test_the_schema_accepts_a_token(client, alice):
    from tests.conftest import PASSWORD

    token = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}).json()["token"]
    r = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200


@pytest.mark.django_db
def test_the_docs_page_sends_anonymous_visitors_to_sign_in(client):
    r = client.get("/api/docs/")
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/?next=/api/docs/")
