"""The instructions: owners write them on the settings page; the labeling page shows them on a
member's first visit, after each owner's edit, and on the I key."""
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotator.models import Project
from annotator.projects.instructions import update_instructions

HX = {"HTTP_HX_REQUEST": "true"}


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _form(project, **extra):
    data = {"markdown": "Label the **largest** digit."}
    for label in project.classes.all():
        data[f"description_{label.pk}"] = ""
        data[f"examples_{label.pk}"] = ""
    return {**data, **extra}


def _edit(client, project, data, **headers):
    return client.post(reverse("project-instructions", args=[project.pk]), data, **headers)


def _overlay_open(client, project):
    body = _client_page(client, project)
    assert 'id="instructions"' in body
    tag = body[body.index('<div id="instructions"'):]
    return " hidden" not in tag[: tag.index(">")]


def _client_page(client, project):
    r = client.get(reverse("label", args=[project.pk]))
    assert r.status_code == 200
    return r.content.decode()


def test_an_owner_saves_instructions_with_descriptions_and_examples(project, alice, make_items):
    first, second = make_items(2)
    two = project.classes.get(name="two")
    data = _form(project, **{f"description_{two.pk}": "A *curved* top.", f"examples_{two.pk}": f"#{second.pk}, {first.pk}"})
    r = _edit(_client(alice), project, data)
    assert r.status_code == 302 and r["Location"].endswith("/settings/#instructions")
    project.refresh_from_db()
    assert (project.instructions, project.instructions_version) == ("Label the **largest** digit.", 1)
    two.refresh_from_db()
    assert two.description == "A *curved* top."
    assert set(two.examples.values_list("pk", flat=True)) == {first.pk, second.pk}
    page = _client(alice).get(reverse("project-settings", args=[project.pk])).content.decode()
    assert f'src="/projects/{project.pk}/items/{first.pk}/image/"' in page  # thumbnails through the media view


def test_htmx_answers_with_the_card_and_says_when_nothing_changed(project, alice):
    r = _edit(_client(alice), project, _form(project), **HX)
    assert r.status_code == 200 and "Instructions saved." in r.content.decode()
    again = _edit(_client(alice), project, _form(project), **HX)
    assert "Nothing changed." in again.content.decode()
    assert Project.objects.get(pk=project.pk).instructions_version == 1


@pytest.mark.parametrize("examples, message", [
    ("12 cats", "Type image numbers such as 12, 40"),
    ("ELSEWHERE", "is not an image of this project"),
    ("1,2,3,4,5,6,7,8,9", "at most 8 example images"),
])
def test_bad_examples_are_refused_and_the_typed_text_stays(project, alice, make_items, examples, message):
    from annotator.projects.changes import create_project

    other = create_project(alice, name="Other", classes=["a", "b"])
    [elsewhere] = make_items(1, target=other)
    one = project.classes.get(name="one")
    data = _form(project, markdown="My long text", **{f"examples_{one.pk}": examples.replace("ELSEWHERE", str(elsewhere.pk))})
    r = _edit(_client(alice), project, data)
    assert r.status_code == 400
    body = r.content.decode()
    assert message in body and "My long text" in body
    assert Project.objects.get(pk=project.pk).instructions_version == 0


def test_too_long_instructions_are_refused(project, alice):
    r = _edit(_client(alice), project, _form(project, markdown="x" * 20_001), **HX)
    assert "at most 20000 characters" in r.content.decode()
    assert Project.objects.get(pk=project.pk).instructions == ""


def test_an_annotator_cannot_edit_them(project, bob):
    r = _edit(_client(bob), project, _form(project))
    assert r.status_code == 403
    assert Project.objects.get(pk=project.pk).instructions == ""


def test_it_rejects_outsider(project, charlie):
    assert _edit(_client(charlie), project, _form(project)).status_code == 404
    assert Project.objects.get(pk=project.pk).instructions == ""


def test_members_read_them_on_the_settings_page(project, bob):
    update_instructions(project, markdown="Use <b>care</b> and *zoom*.")
    body = _client(bob).get(reverse("project-settings", args=[project.pk])).content.decode()
    assert "<p>Use &lt;b&gt;care&lt;/b&gt; and <em>zoom</em>.</p>" in body
    assert 'id="instructions-save"' not in body


def test_the_labeling_page_opens_them_once_per_version(project, alice, bob, make_items):
    make_items(2)
    page = _client_page(_client(bob), project)
    assert 'id="instructions"' not in page  # nothing to show; the button waits, hidden, for a live edit
    assert re.search(r'id="instructions-button"[^>]* hidden>', page)
    update_instructions(project, markdown="Look at the **top** half.")
    bobs = _client(bob)
    assert _overlay_open(bobs, project)  # first visit
    assert not _overlay_open(bobs, project)  # seen: the I key and the button still open it
    assert not re.search(r'id="instructions-button"[^>]* hidden>', _client_page(bobs, project))
    update_instructions(project, classes=[{"id": project.classes.first().pk, "description": "Round."}])
    assert _overlay_open(bobs, project)  # an owner's edit shows them again
    body = _client_page(_client(alice), project)
    assert "<strong>top</strong>" in body and "Round." in body


def test_an_open_page_fetches_the_new_version_and_it_counts_as_seen(project, bob, dave, charlie):
    url = reverse("label-instructions", args=[project.pk])
    bobs = _client(bob)
    assert bobs.get(url).status_code == 204  # nothing to show
    update_instructions(project, markdown="Look at the **top** half.")
    r = bobs.get(url)
    assert r.status_code == 200
    body = r.content.decode()
    assert body.lstrip().startswith('<div id="instructions"') and "<strong>top</strong>" in body
    assert " hidden" not in body[: body.index(">")]
    assert not _overlay_open(bobs, project)  # already seen: the reload does not open it again
    assert _client(dave).get(url).status_code == 403  # viewers do not label
    assert _client(charlie).get(url).status_code == 404
    assert bobs.post(url).status_code == 405


def test_an_edit_tells_the_open_pages(project, monkeypatch, django_capture_on_commit_callbacks):
    from annotator import events

    sent = []
    monkeypatch.setattr(events, "_publisher", lambda pk, message: sent.append((pk, message)))
    with django_capture_on_commit_callbacks(execute=True):
        update_instructions(project, markdown="New.")
    with django_capture_on_commit_callbacks(execute=True):
        update_instructions(project, markdown="New.")  # no change: no event
    assert sent == [(project.pk, {"type": "instructions.changed", "version": 1})]
