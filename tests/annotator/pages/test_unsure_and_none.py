"""The labeling page's Unsure button (key M, unless an older class holds it) and the "none of
these" class button; the new-project and settings forms that turn the class on."""
from django.urls import reverse

from annotator.models import Annotation, LabelClass
from annotator.projects.classes import set_none_class

JSON = {"HTTP_ACCEPT": "application/json"}


def _label_page(client, user, project):
    client.force_login(user)
    return client.get(reverse("label", args=[project.pk])).content.decode()


def test_the_page_shows_unsure_with_its_key_and_the_none_button(client, project, bob, make_items):
    set_none_class(project, "none")
    make_items(1)
    html = _label_page(client, bob, project)
    assert 'id="unsure-button" data-hotkey="m"' in html and "<kbd>M</kbd> Unsure" in html
    assert 'class="class-button is-none" data-hotkey="n"' in html and "<span>none</span>" in html


def test_a_class_that_holds_the_unsure_key_keeps_it(client, project, bob, make_items):
    LabelClass.objects.filter(project=project, name="two").update(hotkey="m")  # a project older than the key
    make_items(1)
    html = _label_page(client, bob, project)
    assert 'id="unsure-button" data-hotkey=""' in html and "<kbd>M</kbd> Unsure" not in html


def test_unsure_from_the_page_is_stored_as_an_unsure_skip(client, project, bob, make_items):
    item = make_items(1)[0]
    _label_page(client, bob, project)
    r = client.post(reverse("label-answer", args=[project.pk]),
                    {"item": item.pk, "unsure": "1", "idempotency_key": "u1"}, **JSON)
    assert r.status_code == 200, r.content
    assert r.json()["saved"]["unsure"] is True and r.json()["saved"]["skipped"] is True
    stored = Annotation.objects.get()
    assert stored.unsure and stored.skipped and stored.label_id is None


def test_the_new_project_form_takes_the_none_class_and_review_fraction(client, alice):
    client.force_login(alice)
    r = client.post(reverse("project-create"), {
        "name": "Pets", "classes": "cat\ndog", "strategy": "auto", "query_batch_size": 10, "audit_fraction": 0.1,
        "annotations_per_item": 1, "review_fraction": 0.2, "none_class": "neither"})
    assert r.status_code == 302
    classes = LabelClass.objects.order_by("order")
    assert [(c.name, c.is_none, c.hotkey) for c in classes] == [("cat", False, "1"), ("dog", False, "2"),
                                                                 ("neither", True, "n")]
    assert classes[0].project.review_fraction == 0.2


def test_the_settings_page_turns_it_on(client, project, alice):
    client.force_login(alice)
    html = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert 'id="none-class-form"' in html
    r = client.post(reverse("class-none", args=[project.pk]), {"name": "none"}, follow=True)
    assert "Added the “none of these” class" in r.content.decode()
    assert 'id="none-class-form"' not in r.content.decode()
    assert project.classes.get(is_none=True).name == "none"
    r = client.post(reverse("class-none", args=[project.pk]), {"name": ""}, follow=True)
    assert "Name the “none of these” class" in r.content.decode()
