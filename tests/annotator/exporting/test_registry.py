"""The export registry is the one list of formats: the page's links, the API schema and the
command's --format are read from it, so they cannot drift from each other."""
import pytest
from django.urls import reverse

from annotator.exporting import formats
from annotator.exporting.registry import KINDS, LABELS, REGISTRY, Body, ExportError, ExportFormat, register
from annotator.management.commands.export import Command


def test_the_registry_lists_every_format_in_order():
    assert list(REGISTRY) == ["csv", "jsonl", "imagefolder", "yolo-classify", "fiftyone", "labelstudio", "model",
                              "embeddings"]
    for name, export_format in REGISTRY.items():
        assert export_format.name == name
        assert export_format.kind in KINDS
        assert export_format.unit in ("item", "B")
        assert export_format.title and export_format.note
        filename = export_format.filename.format(slug="digits", version=3)
        assert filename.startswith("digits-") and filename.endswith(export_format.suffix)


def test_every_format_is_on_the_page(client, project, alice):
    client.force_login(alice)
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    for name, export_format in REGISTRY.items():
        assert f"/projects/{project.pk}/export/?format={name}" in html
        assert (f'<option value="{name}">' in html) == (export_format.kind == LABELS)


def test_every_format_is_in_the_api_schema(client, alice):
    client.force_login(alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/projects/{id}/export/"]["get"]
    parameter = next(p for p in operation["parameters"] if p["name"] == "format")
    assert sorted(parameter["schema"]["enum"]) == sorted(REGISTRY)
    ok = operation["responses"]["200"]
    assert set(ok["content"]) == {f.media_type for f in REGISTRY.values()}
    for name in REGISTRY:
        assert name in ok["description"]


def test_every_format_is_a_choice_of_the_command():
    parser = Command().create_parser("manage.py", "export")
    action = next(a for a in parser._actions if "--format" in a.option_strings)
    assert list(action.choices) == list(REGISTRY)
    for name in REGISTRY:
        assert f"{name}: " in action.help


@pytest.mark.django_db
def test_an_unknown_format_is_refused_with_the_registered_names(project):
    with pytest.raises(ExportError, match="Choose one of: " + ", ".join(REGISTRY)):
        formats.build(project, "xlsx")


@pytest.mark.django_db
def test_build_finds_a_registered_format_by_name(project, monkeypatch):
    seen = {}

    def produce(project, options, progress):
        seen["options"] = options
        progress(1, 1)
        return Body(iter([b"hello"]), 1, version=7)

    fake = ExportFormat(name="fake", title="Fake", note="txt", filename="{slug}-fake-v{version}.txt",
                        content_type="text/plain; charset=utf-8", kind=LABELS, unit="item", produce=produce)
    monkeypatch.setitem(REGISTRY, "fake", fake)
    export = formats.build(project, " FAKE ", with_predictions=True, min_confidence="0.5")
    assert (export.filename, export.content_type, export.total, export.unit) == (
        "digits-fake-v7.txt", "text/plain; charset=utf-8", 1, "item")
    assert b"".join(export.chunks) == b"hello"
    assert (seen["options"].with_predictions, seen["options"].min_confidence) == (True, 0.5)
    with pytest.raises(ValueError, match="registered twice"):
        register(fake)
