"""ProjectRole: the one permission check of every view under /api/projects/<id>/.

Each project-scoped viewset says who may run each of its actions in `roles`, a dict from the
action's name (the method that handles the request, `.mapping` handlers included) to the roles
that may run it, ANY_MEMBER for every member. Before the action runs, ProjectRole looks the
project up once with annotator.access.project_for and keeps it as `view.project`:

- outsiders (and ids that are not a project) get 404 "No such project.", so they learn
  nothing about other projects;
- members whose role is not listed get 403 with project_for's sentence naming the roles.

Requests that name no project (the project list), methods the route does not allow (405)
and OPTIONS are left to DRF, as before.
"""
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from annotator.access import Forbidden, project_for

ANY_MEMBER = None  # project_for's `roles` for "every member"


class ProjectRole(BasePermission):
    def has_permission(self, request, view):
        pk = view.kwargs.get("pk")
        if pk is None or view.action in (None, "metadata"):
            return True
        try:
            roles = view.roles[view.action]
        except KeyError:
            raise ImproperlyConfigured(f"{type(view).__name__}.roles says nothing about {view.action!r}.") from None
        try:
            view.project = project_for(request.user, pk, roles=roles)
        # As DRF's own exceptions, so that the browsable API and OPTIONS, which check
        # permissions for other methods too, take them as "not allowed" instead of failing.
        except Http404 as refusal:
            raise exceptions.NotFound(*refusal.args) from None
        except Forbidden as refusal:
            raise exceptions.PermissionDenied(refusal.message) from None
        return True
