"""The instructions card of the settings page: owners write the labeling instructions and each
class's description and example images (annotator/projects/instructions.py)."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotator.access import OWNER_ROLES, OWNERS_ONLY, ServiceError, project_for
from annotator.pages.forms import InstructionsForm
from annotator.pages.settings import render_settings
from annotator.projects.instructions import update_instructions


@login_required
@require_POST
def instructions_edit(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = InstructionsForm.for_project(project, request.POST)
    error = notice = None
    if not form.is_valid():
        error = "The instructions were not saved: see the fields marked below."
    else:
        before = project.instructions_version
        try:
            update_instructions(project, **form.changes())
        except ServiceError as exc:
            error = exc.message
        else:
            changed = project.instructions_version != before
            notice = ("Instructions saved. Annotators see them when they next open the labeling page."
                      if changed else "Nothing changed.")
            form = InstructionsForm.for_project(project)
    if not request.htmx and not error:
        messages.success(request, notice)
        return redirect(reverse("project-settings", args=[project.pk]) + "#instructions")
    return render_settings(request, project, partial="instructions", instructions_form=form,
                           instructions_error=error, instructions_notice=notice)
