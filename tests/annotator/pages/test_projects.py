"""Project list, creation, overview, members and import through the HTML pages."""
import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Item, LabelClass, Project, Role
from annotator.projects.changes import create_project
from tests.conftest import png_bytes


def test_project_list_shows_only_my_projects_with_role_and_counts(client, project, bob, charlie, make_items):
    items = make_items(3)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="one", idempotency_key="k1")
    create_project(charlie, name="Charlie's secret", classes=["a", "b"])
    client.force_login(bob)
    response = client.get(reverse("project-list"))
    body = response.content.decode()
    assert "Digits" in body and "Charlie&#x27;s secret" not in body
    [row] = response.context["projects"]
    assert (row.role, row.item_count, row.labeled_count) == ("annotator", len(items), 1)
    assert reverse("project-create") in body


def test_project_list_says_what_to_do_when_empty(client, charlie):
    client.force_login(charlie)
    assert "Create your first project" in client.get(reverse("project-list")).content.decode()


def test_it_creates_a_project(client, charlie):
    client.force_login(charlie)
    response = client.post(
        reverse("project-create"),
        {
            "name": "Birds",
            "classes": "robin\n  sparrow \n\nwren\n",
            "strategy": "bald",
            "query_batch_size": "25",
            "audit_fraction": "0.2",
            "annotations_per_item": "2",
        },
    )
    project = Project.objects.get(name="Birds")
    assert response["Location"] == reverse("project-detail", args=[project.pk])
    assert project.class_names() == ["robin", "sparrow", "wren"]
    assert [c.hotkey for c in project.ordered_classes()] == ["1", "2", "3"]
    assert (project.strategy, project.query_batch_size, project.audit_fraction, project.annotations_per_item) == (
        "bald", 25, 0.2, 2
    )
    assert project.role_of(charlie) == Role.OWNER


def test_it_shows_errors_for_an_invalid_project(client, charlie):
    client.force_login(charlie)
    data = {"name": "Birds", "classes": "robin", "strategy": "auto", "query_batch_size": "10",
            "audit_fraction": "0.1", "annotations_per_item": "1"}
    response = client.post(reverse("project-create"), data)
    assert response.status_code == 400
    assert "at least two classes" in response.content.decode()
    response = client.post(reverse("project-create"), {**data, "classes": "a\nb", "audit_fraction": "1.5"})
    assert response.status_code == 400
    assert "less than or equal to 1" in response.content.decode()
    response = client.post(reverse("project-create"), {**data, "classes": "a\na"})
    assert "must be unique" in response.content.decode()
    assert not Project.objects.filter(name="Birds").exists()


def test_overview_shows_stats_role_and_start_button(client, project, bob, make_items):
    make_items(4)
    lease = lease_next(project, bob)
    submit_annotation(project, bob, item_id=lease.item_id, label="two", idempotency_key="k1")
    client.force_login(bob)
    response = client.get(reverse("project-detail", args=[project.pk]))
    body = response.content.decode()
    assert response.context["stats"]["labeled"] == 1
    assert "Start labeling" in body and reverse("label", args=[project.pk]) in body
    assert {row["name"]: row["count"] for row in response.context["class_rows"]} == {"zero": 0, "one": 0, "two": 1}
    assert response.context["annotator_rows"] == [("bob", 1)]
    # Members and import are for owners only.
    assert reverse("project-members", args=[project.pk]) not in body


def test_owner_sees_members_and_import_forms(client, project, alice):
    client.force_login(alice)
    body = client.get(reverse("project-detail", args=[project.pk])).content.decode()
    assert reverse("project-members", args=[project.pk]) in body
    assert 'type="file" name="file" multiple' in body
    assert "dave" in body and "bob" in body


def test_owner_adds_a_member(client, project, alice, charlie):
    client.force_login(alice)
    response = client.post(reverse("project-members", args=[project.pk]), {"username": "charlie", "role": "viewer"})
    assert response.status_code == 302
    assert project.role_of(charlie) == Role.VIEWER


def test_owner_adds_a_member_with_htmx(client, project, alice, charlie):
    client.force_login(alice)
    response = client.post(
        reverse("project-members", args=[project.pk]), {"username": "charlie", "role": "annotator"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="members"')
    assert "charlie is now annotator" in body
    assert project.role_of(charlie) == Role.ANNOTATOR


def test_adding_an_unknown_user_shows_the_error(client, project, alice):
    client.force_login(alice)
    response = client.post(reverse("project-members", args=[project.pk]), {"username": "nobody", "role": "annotator"})
    assert response.status_code == 400
    assert "No active account is named" in response.content.decode()
    response = client.post(
        reverse("project-members", args=[project.pk]), {"username": "nobody", "role": "annotator"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "No active account is named" in response.content.decode()
    assert project.memberships.count() == 3


def _upload(name, content, content_type="image/png"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_owner_imports_images_through_the_form(client, project, alice):
    client.force_login(alice)
    files = [_upload("a.png", png_bytes(1)), _upload("b.png", png_bytes(2)), _upload("notes.txt", b"hello", "text/plain")]
    response = client.post(reverse("project-import", args=[project.pk]), {"file": files})
    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["import_report"]["imported"] == 2
    assert response.context["import_report"]["rejected"] == 1
    assert "notes.txt" in body
    assert sorted(Item.objects.filter(project=project).values_list("original_name", flat=True)) == ["a.png", "b.png"]


def test_import_with_htmx_returns_the_result_and_fresh_stats(client, project, alice):
    client.force_login(alice)
    client.post(reverse("project-import", args=[project.pk]), {"file": [_upload("a.png", png_bytes(1))]})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("one/b.png", png_bytes(2))
        zf.writestr("c.png", png_bytes(3))
        zf.writestr("a-again.png", png_bytes(1))
    response = client.post(
        reverse("project-import", args=[project.pk]),
        {"file": [_upload("batch.zip", archive.getvalue(), "application/zip")]},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="import-result"')
    assert 'id="stats" class="card stats" hx-swap-oob="true"' in body
    assert "<strong>2</strong> imported · <strong>1</strong> duplicate skipped · <strong>0</strong> rejected" in body
    assert '<span class="stat-value">3</span><span class="stat-label">images</span>' in body
    assert project.items.count() == 3
    assert project.items.get(original_name__endswith="b.png").label_count == 1  # pre-labeled from its folder


def test_import_without_files_says_what_to_do(client, project, alice):
    client.force_login(alice)
    response = client.post(reverse("project-import", args=[project.pk]), {})
    assert response.status_code == 400
    assert "Choose one or more image files" in response.content.decode()


def test_classes_keep_their_order_on_the_labeling_page(client, project, alice, make_items):
    make_items(1)
    client.force_login(alice)
    response = client.get(reverse("label", args=[project.pk]))
    names = [c.name for c in response.context["classes"]]
    assert names == list(LabelClass.objects.filter(project=project).order_by("order").values_list("name", flat=True))
