"""The settings page (owners change, members read): project settings, classes, label import
and the model's controls (pause, reset, starting checkpoint)."""
import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotator.access import OWNER_ROLES, OWNERS_ONLY, Invalid, NotFound, ServiceError, project_for
from annotator.importing.labels import import_labels
from annotator.modelloop.status import trainer_status
from annotator.modelloop.steering import reset_model, set_encoder, set_paused, upload_checkpoint
from annotator.models import Encoder, Role
from annotator.pages.forms import ClassForm, InstructionsForm, LabelImportForm, SettingsForm
from annotator.pages.members import members_context
from annotator.projects.changes import update_settings
from annotator.projects.classes import add_class, class_usage, move_class, remove_class, rename_class, set_none_class
from annotator.projects.instructions import instructions_for


@login_required
def project_settings(request, pk):
    """Every member reads the settings; owners change them."""
    project = project_for(request.user, pk, roles=OWNER_ROLES if request.method == "POST" else None, refusal=OWNERS_ONLY)
    form = SettingsForm.for_project(project, request.POST if request.method == "POST" else None)
    notice = None
    if request.method == "POST" and form.is_valid():
        try:
            update_settings(project, **form.settings())
        except ServiceError as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            if not request.htmx:
                messages.success(request, "Settings saved.")
                return redirect("project-settings", pk=project.pk)
            notice = "Settings saved."
        if form.errors:
            project.refresh_from_db()
    return render_settings(request, project, partial="settings-form", settings_form=form, settings_notice=notice)


@login_required
@require_POST
def class_add(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _render_classes(request, project, "Type the new class's name (at most 100 characters).")
    name = form.cleaned_data["name"].strip()
    change = functools.partial(add_class, project, name)
    return _change_classes(request, project, change, f"Added the class “{name}”.")


@login_required
@require_POST
def class_none(request, pk):
    """Turn the "none of these" class on (removing it, like any class, turns it off)."""
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _render_classes(request, project, "Name the “none of these” class (at most 100 characters).")
    name = form.cleaned_data["name"].strip()
    change = functools.partial(set_none_class, project, name)
    return _change_classes(request, project, change, f"Added the “none of these” class “{name}” (key N).")


@login_required
@require_POST
def class_rename(request, pk, class_pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = ClassForm(request.POST)
    if not form.is_valid():
        return _render_classes(request, project, "Type the class's new name (at most 100 characters).")
    name = form.cleaned_data["name"].strip()
    change = functools.partial(rename_class, project, class_pk, name)
    return _change_classes(request, project, change, f"Renamed the class to “{name}”.")


@login_required
@require_POST
def class_move(request, pk, class_pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction"))
    if offset is None:
        return _render_classes(request, project, "Move a class up or down.")
    change = functools.partial(move_class, project, class_pk, offset)
    return _change_classes(request, project, change, None)


@login_required
@require_POST
def class_remove(request, pk, class_pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    change = functools.partial(remove_class, project, class_pk)
    return _change_classes(request, project, change, "Removed the class.")


def _change_classes(request, project, change, notice):
    try:
        change()
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:
        return _render_classes(request, project, exc.message)
    if not request.htmx:
        if notice:
            messages.success(request, notice)
        return redirect("project-settings", pk=project.pk)
    return render_settings(request, project, partial="classes", class_notice=notice)


def _render_classes(request, project, error):
    return render_settings(request, project, partial="classes", class_error=error)


@login_required
@require_POST
def label_import(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = LabelImportForm(request.POST, request.FILES)
    report, error = None, None
    if not form.is_valid():
        error = "Choose a CSV file with the header file,class, then press Import labels."
    else:
        try:
            report = import_labels(project, request.user, form.cleaned_data["file"])
        except ServiceError as exc:
            error = exc.message
    return render_settings(request, project, partial="label-import-result", label_report=report, label_error=error)


LABEL_ROWS_SHOWN = 200


def _model_change(request, project, change, notice):
    """Run an owner's change to the model loop; answer with the settings page's Model region
    (htmx), its notice or the refusal's reason in it, or else a redirect to that region with
    the same text as a message."""
    error = None
    try:
        result = change()
    except ServiceError as exc:
        error = exc.message
    else:
        notice = notice(result) if callable(notice) else notice
    project.refresh_from_db()
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or notice)
        return redirect(reverse("project-settings", args=[project.pk]) + "#model")
    return render_settings(request, project, partial="model", model_notice=None if error else notice,
                            model_error=error)


@login_required
@require_POST
def model_pause(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    paused = request.POST.get("paused") in {"1", "true", "on"}
    return _model_change(request, project, lambda: set_paused(project, paused),
                         "Training paused." if paused else "Training resumed.")


@login_required
@require_POST
def model_reset(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    clear = request.POST.get("clear_checkpoint") in {"1", "true", "on"}
    return _model_change(request, project, lambda: reset_model(project, by=request.user, clear_checkpoint=clear),
                         "The model was reset; the trainer starts over.")


@login_required
@require_POST
def model_encoder(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    encoder = request.POST.get("encoder", "")
    before = project.encoder

    def notice(result):
        if result.encoder == before:
            return "The encoder is unchanged."
        return f"The encoder is now {result.get_encoder_display()}; the model starts over."

    return _model_change(request, project, lambda: set_encoder(project, encoder, by=request.user), notice)


@login_required
@require_POST
def model_checkpoint(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    upload = request.FILES.get("checkpoint")

    def change():
        if upload is None:
            raise Invalid("Choose a checkpoint file (.pt) to upload.")
        return upload_checkpoint(project, upload, by=request.user)

    def notice(report):
        return (f"Loaded {report['name']}: {report['matched']} of {report['total']} encoder tensors fit "
                f"({report['architecture']}). The model starts over from it.")

    return _model_change(request, project, change, notice)


def encoder_choices():
    """(value, label) of every encoder; those whose package is not installed say so."""
    from mlcore.encoders import catalog

    return [(value, f"{label} — package {catalog.PRETRAINED[value].package} not installed"
             if value in catalog.PRETRAINED and not catalog.usable(value) else label)
            for value, label in Encoder.choices]


def render_settings(request, project, *, partial=None, **extra):
    """The settings page, or one of its regions for an htmx request (200, so htmx swaps the
    region with its errors); a full page with an error answers 400."""
    is_owner = project.current_role == Role.OWNER
    usage = class_usage(project)
    classes = project.ordered_classes()
    report = extra.get("label_report")
    context = {
        "project": project,
        "is_owner": is_owner,
        "settings_form": SettingsForm.for_project(project),
        "class_rows": [
            {"label": c, "labels": usage[c.pk][0], "removable": not usage[c.pk][1]} for c in classes
        ],
        "has_none_class": any(c.is_none for c in classes),
        "label_problems": [r for r in report["rows"] if r["status"] != "imported"][:LABEL_ROWS_SHOWN] if report else (),
        "label_rows_shown": LABEL_ROWS_SHOWN,
        "trainer_status": trainer_status(project),
        "checkpoint_max_mb": settings.CHECKPOINT_UPLOAD_MAX_MB,
        "encoder_choices": encoder_choices(),
        "instructions": instructions_for(project),
        "instructions_form": InstructionsForm.for_project(project) if is_owner else None,
        **members_context(project),
        **extra,
    }
    template = "annotator/project_settings.html"
    if request.htmx and partial:
        return render(request, f"{template}#{partial}", context)
    forms_failed = context["settings_form"].errors or context["member_form"].errors
    failed = forms_failed or any(context.get(key) for key in ("class_error", "label_error", "ls_error",
                                                               "suggestion_error", "instructions_error"))
    return render(request, template, context, status=400 if failed else 200)
