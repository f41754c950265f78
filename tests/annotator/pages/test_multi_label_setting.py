"""Multi-label is chosen on the creation page and fixed afterwards: the settings page shows it
disabled and refuses a post that tries to change it, with a sentence; so does the API."""
from django.urls import reverse

from annotator.models import Project

DATA = {"name": "Scenes", "classes": "sky\nsea\nsand", "strategy": "auto", "query_batch_size": "10",
        "audit_fraction": "0.1", "annotations_per_item": "1"}


def test_the_creation_page_offers_multi_label(client, charlie):
    client.force_login(charlie)
    page = client.get(reverse("project-create")).content.decode()
    assert 'name="multi_label"' in page and "cannot be changed" in page
    client.post(reverse("project-create"), {**DATA, "multi_label": "on"})
    assert Project.objects.get(name="Scenes").multi_label is True
    client.post(reverse("project-create"), {**DATA, "name": "Single"})
    assert Project.objects.get(name="Single").multi_label is False


def test_the_settings_page_shows_it_fixed_and_refuses_a_change(client, alice, tags, project):
    client.force_login(alice)
    url = reverse("project-settings", args=[tags.pk])
    page = client.get(url).content.decode()
    assert 'name="multi_label"' in page and "disabled" in page.split('name="multi_label"')[1].split(">")[0]
    body = {k: v for k, v in DATA.items() if k != "classes"}
    reply = client.post(url, body)  # the unchecked box a browser sends for a disabled field: nothing to refuse
    tags.refresh_from_db()
    assert tags.multi_label and tags.name == "Scenes"
    reply = client.post(reverse("project-settings", args=[project.pk]), {**body, "multi_label": "on"})
    assert "cannot be changed afterwards" in reply.content.decode()
    project.refresh_from_db()
    assert project.multi_label is False and project.name == "Digits"


def test_the_api_refuses_to_change_it_with_a_sentence(api, alice, tags):
    url = f"/api/projects/{tags.pk}/settings/"
    assert api(alice).get(url).json()["multi_label"] is True
    reply = api(alice).patch(url, {"multi_label": False}, format="json")
    assert reply.status_code == 400 and "cannot be changed afterwards" in str(reply.json())
    tags.refresh_from_db()
    assert tags.multi_label


def test_wrong_role_and_outsider_cannot_post_settings(client, bob, charlie, tags):
    url = reverse("project-settings", args=[tags.pk])
    client.force_login(bob)
    assert client.post(url, {"name": "x", "multi_label": ""}).status_code == 403
    client.force_login(charlie)
    assert client.post(url, {"name": "x", "multi_label": ""}).status_code == 404
    tags.refresh_from_db()
    assert tags.multi_label and tags.name == "Tags"
