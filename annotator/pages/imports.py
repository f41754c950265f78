"""The settings page's other imports (owners): labels from a Label Studio JSON export, and
another tool's guesses from a `file,class,score` CSV. Both answer with their region of the
settings page: the counts, and every row or task that was not written with its reason."""
from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_POST

from annotator.access import OWNER_ROLES, OWNERS_ONLY, ServiceError, project_for
from annotator.importing.labelstudio import import_labelstudio
from annotator.importing.suggestions import import_suggestions
from annotator.pages.forms import LabelStudioImportForm, SuggestionImportForm
from annotator.pages.settings import LABEL_ROWS_SHOWN, render_settings

WRITTEN = ("imported", "stored")


def _problems(report):
    return [row for row in report["rows"] if row["status"] not in WRITTEN][:LABEL_ROWS_SHOWN] if report else ()


@login_required
@require_POST
def labelstudio_import(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = LabelStudioImportForm(request.POST, request.FILES)
    report, error = None, None
    if not form.is_valid():
        error = "Choose Label Studio's JSON export (a .json file), then press Import from Label Studio."
    else:
        try:
            report = import_labelstudio(project, request.user, form.cleaned_data["file"])
        except ServiceError as exc:
            error = exc.message
    return render_settings(request, project, partial="labelstudio-import-result", ls_report=report,
                           ls_problems=_problems(report), ls_error=error)


@login_required
@require_POST
def suggestion_import(request, pk):
    project = project_for(request.user, pk, roles=OWNER_ROLES, refusal=OWNERS_ONLY)
    form = SuggestionImportForm(request.POST, request.FILES)
    report, error = None, None
    if not form.is_valid():
        error = "Choose a CSV file with the header file,class,score (a source name of at most 100 characters)."
    else:
        try:
            report = import_suggestions(project, form.cleaned_data["file"], source=form.cleaned_data["source"])
        except ServiceError as exc:
            error = exc.message
    return render_settings(request, project, partial="suggestion-import-result", suggestion_report=report,
                           suggestion_problems=_problems(report), suggestion_error=error)
