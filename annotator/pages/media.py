"""Images are served only to members of the item's project, through this view."""
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed

from annotator.access import project_for
from annotator.accounts.tokens import ApiTokenAuthentication
from annotator.models import Item


def _user(request):
    """The session user, or the user of an `Authorization: Token` header (API clients)."""
    if request.user.is_authenticated:
        return request.user
    try:
        found = ApiTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return request.user
    return found[0] if found else request.user


@require_GET
def item_image(request, pk, item_pk):
    project = project_for(_user(request), pk)
    item = Item.objects.filter(project=project, pk=item_pk).first()
    if item is None:
        raise Http404("No such item.")
    use_original = request.GET.get("original") == "1" or not item.display_image
    field = item.image if use_original else item.display_image
    try:
        handle = field.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The image file is missing on the server.") from exc
    response = FileResponse(handle)
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
