"""Login, logout, password change and the root redirect."""
from django.urls import reverse

from tests.conftest import PASSWORD


def test_root_redirects_to_the_project_list(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("project-list")


def test_it_logs_in_through_the_form(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("project-list")
    assert response.context["user"] == alice


def test_it_shows_an_error_for_a_wrong_password(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_logs_out_with_post(client, alice):
    client.force_login(alice)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_changes_the_password(client, alice):
    client.force_login(alice)
    assert client.get(reverse("password_change")).status_code == 200
    new = "another-long-passphrase-42"
    response = client.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response["Location"] == reverse("password_change_done")
    alice.refresh_from_db()
    assert alice.check_password(new)
    assert "Password changed" in client.get(reverse("password_change_done")).content.decode()


def test_nav_links_admin_for_staff_only(client, alice):
    client.force_login(alice)
    assert reverse("admin:index") not in client.get(reverse("project-list")).content.decode()
    alice.is_staff = True
    alice.save()
    assert reverse("admin:index") in client.get(reverse("project-list")).content.decode()
