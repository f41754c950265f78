"""Who belongs to a project: adding members, changing roles and removing them. A project
always keeps at least one owner."""
from django.contrib.auth import get_user_model
from django.db import transaction

from annotator import events
from annotator.access import Invalid, NotFound
from annotator.db import lock_project_row
from annotator.models import Lease, Membership, Role


def add_member(project, username, role):
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Invalid(f"There is no user named {username!r}. Ask an administrator to create the account first.")
    with transaction.atomic():
        current = Membership.objects.select_for_update().filter(project=project, user=user).first()
        if current and current.role == Role.OWNER and role != Role.OWNER:
            if not Membership.objects.filter(project=project, role=Role.OWNER).exclude(pk=current.pk).exists():
                raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def _membership(project, username):
    membership = project.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project.")
    return membership


def change_role(project, username, role):
    """A member's new role (add_member refuses to demote the only owner)."""
    _membership(project, username)
    return add_member(project, username, role)


def remove_member(project, username):
    """Take the user out of the project; their answers stay, their leases are given back."""
    with transaction.atomic():
        lock_project_row(project)
        membership = _membership(project, username)
        if membership.role == Role.OWNER:
            others = Membership.objects.filter(project=project, role=Role.OWNER).exclude(pk=membership.pk)
            if not others.exists():
                raise Invalid(f"{username} is the only owner of this project; make someone else an owner first.")
        membership.delete()
        Lease.objects.filter(project=project, user=membership.user).delete()
        # the removed member's open sockets close (annotator/live/consumers.py)
        transaction.on_commit(lambda: events.publish(project.pk, events.members_event()))
    return membership
