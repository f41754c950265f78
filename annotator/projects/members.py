"""Who belongs to a project: adding members, changing roles and removing them. A project
always keeps at least one owner: every change locks the project's row before it counts the
owners, so two owners demoting (or removing) each other at once leave one of them owner."""
from django.contrib.auth import get_user_model
from django.db import transaction

from annotator import events
from annotator.access import Invalid, NotFound
from annotator.db import lock_project_row
from annotator.models import Lease, Membership, Role


def no_account_message(username):
    """One sentence for "no such account" and "an account that cannot be added"
    (deactivated), so that member errors do not tell which usernames exist."""
    return (
        f"No active account is named {username!r}. Check the spelling, or ask an administrator "
        "to create (or reactivate) the account first."
    )


def _only_owner(project, membership):
    others = Membership.objects.filter(project=project, role=Role.OWNER).exclude(pk=membership.pk)
    return membership.role == Role.OWNER and not others.exists()


def add_member(project, username, role):
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise Invalid(no_account_message(username))
    with transaction.atomic():
        lock_project_row(project)  # before counting owners: see the module's docstring
        current = Membership.objects.filter(project=project, user=user).first()
        if current and role != Role.OWNER and _only_owner(project, current):
            raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def _membership(project, username):
    membership = project.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project.")
    return membership


def change_role(project, username, role):
    """A member's new role (the only owner keeps theirs)."""
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    with transaction.atomic():
        lock_project_row(project)
        membership = _membership(project, username)
        if role != Role.OWNER and _only_owner(project, membership):
            raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(project, username):
    """Take the user out of the project; their answers stay, their leases are given back."""
    with transaction.atomic():
        lock_project_row(project)
        membership = _membership(project, username)
        if _only_owner(project, membership):
            raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership.delete()
        Lease.objects.filter(project=project, user=membership.user).delete()
        # the removed member's open sockets close (annotator/live/consumers.py)
        transaction.on_commit(lambda: events.publish(project.pk, events.members_event()))
    return membership
