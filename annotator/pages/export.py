"""`/projects/<pk>/export/`: the browser's download (session; anonymous users are sent to the
sign-in page). Every member may export; outsiders get 404. Refusals are plain text."""
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from annotator.access import project_for
from annotator.exporting.download import streaming_response
from annotator.exporting.registry import ExportError


@require_GET
def project_export(request, pk):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    project = project_for(request.user, pk)
    try:
        return streaming_response(request, project)
    except ExportError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
