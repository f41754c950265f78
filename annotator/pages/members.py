"""The members section, shared by the project page and the settings page: change a role,
remove a member (owners only)."""
import functools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from annotator.access import OWNER_ROLES, OWNERS_ONLY, ServiceError, project_for
from annotator.models import Role
from annotator.pages.forms import MemberForm
from annotator.projects.members import change_role, remove_member


def members_context(project):
    return {
        "members": project.memberships.select_related("user").order_by("user__username"),
        "roles": Role.choices,
        "member_form": MemberForm(),
    }


def render_members(request, project, **extra):
    context = {
        "project": project,
        "is_owner": project.current_role == Role.OWNER,
        "back": request.POST.get("back", ""),
        **members_context(project),
        **extra,
    }
    return render(request, "annotator/_members.html", context)


def back_to(request, project):
    """Where a member form posted without JavaScript returns: the page it came from."""
    if request.POST.get("back") == "settings":
        return reverse("project-settings", args=[project.pk])
    return project.get_absolute_url()


def _member_change(request, project, change, notice):
    """Apply `change` (a projects.members call) and answer with the members section (htmx) or a
    redirect back with a message."""
    error = None
    try:
        change()
    except ServiceError as exc:
        error, notice = exc.message, None
    else:
        project.current_role = project.role_of(request.user)  # the caller may have changed their own role
    if project.current_role is None:  # the caller left the project
        messages.success(request, notice)
        url = reverse("project-list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.htmx:
        return render_members(request, project, member_notice=notice, member_error=error)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(back_to(request, project))


@login_required
@require_POST
def member_role(request, pk, member_pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    membership = get_object_or_404(project.memberships.select_related("user"), pk=member_pk)
    username, role = membership.user.get_username(), request.POST.get("role", "")
    change = functools.partial(change_role, project, username, role)
    return _member_change(request, project, change, f"{username} is now {role} of this project.")


@login_required
@require_POST
def member_remove(request, pk, member_pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    membership = get_object_or_404(project.memberships.select_related("user"), pk=member_pk)
    username = membership.user.get_username()
    change = functools.partial(remove_member, project, username)
    notice = f"{username} is no longer a member of this project; their answers stay."
    return _member_change(request, project, change, notice)
