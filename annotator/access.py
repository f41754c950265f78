"""Who may do what in a project, and the refusals every service raises.

`project_for(user, pk, roles=...)` is the one lookup that pages, API views, images,
downloads and websockets start with: outsiders (and anonymous users) get 404, so they learn
nothing about other projects; members whose role does not allow the action get Forbidden,
a 403 with a sentence that says whom to ask.
"""
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotator.db import columns
from annotator.models import Membership, Project, Role

LABELING_ROLES = (Role.OWNER, Role.ANNOTATOR)
OWNER_ROLES = (Role.OWNER,)
REVIEW_ROLES = (Role.OWNER, Role.REVIEWER)
DASHBOARD_ROLES = (Role.OWNER, Role.VIEWER, Role.REVIEWER)

OWNERS_ONLY = "Only project owners can do this. Ask an owner of this project."

# Row ids are 64-bit; a larger number names no row (and SQLite refuses it in a query).
MAX_ID = 2**63 - 1


class ServiceError(Exception):
    """A refusal with a sentence meant for the user; `status` is its HTTP status."""

    status = 400

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Invalid(ServiceError):
    status = 400


class Conflict(ServiceError):
    status = 409


class NotFound(ServiceError):
    status = 404


class StorageFull(ServiceError):
    """The server's disk (or quota) is full: nothing more can be stored until space is freed."""

    status = 507


class Forbidden(ServiceError, PermissionDenied):
    """Also a PermissionDenied, so pages answer it with the 403 page and its sentence."""

    status = 403


def project_for(user, pk, *, roles=None, refusal=None):
    """The project if `user` is a member (Http404 otherwise); Forbidden, with `refusal` or a
    sentence naming the roles, if the member's role is not in `roles`. The project carries
    the caller's role as `current_role`."""
    if not user.is_authenticated or not is_row_id(pk):
        raise Http404("No such project.")
    # hand-written: every project-scoped request asks, and the ORM's building of the join cost
    # about as much as the rest of a labeling request's lookups together
    found = list(Project.objects.raw(_MEMBER_PROJECT, [int(pk), user.pk]))
    if not found:
        raise Http404("No such project.")
    project = found[0]
    if roles is not None and project.current_role not in roles:
        raise Forbidden(refusal or f"Your role in this project is {project.current_role}; this needs {' or '.join(roles)}.")
    return project


_MEMBER_PROJECT = (
    f"SELECT {columns(Project, 'p')},"
    f" m.role AS current_role FROM {Project._meta.db_table} p"
    f" JOIN {Membership._meta.db_table} m ON m.project_id = p.id WHERE p.id = %s AND m.user_id = %s"
)


def is_row_id(value):
    """Whether `value` (an int or a string from a URL) can be the id of a row."""
    try:
        return 1 <= int(value) <= MAX_ID
    except (TypeError, ValueError):
        return False


def projects_for_user(user):
    return Project.objects.filter(memberships__user=user)
