"""The account page: the signed-in user's API tokens (new, list, revoke) and a link to the
password change. A new token's value is shown once, on the page that created it."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotator.access import ServiceError
from annotator.accounts.tokens import issue_token, revoke_token, user_tokens
from annotator.pages.forms import TokenForm


def _render(request, *, form=None, new_key=None, status=200):
    context = {"tokens": user_tokens(request.user), "form": form or TokenForm(), "new_key": new_key,
               "ttl_days": settings.API_TOKEN_TTL_DAYS}
    return render(request, "registration/account.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    if request.method != "POST":
        return _render(request)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render(request, form=form, status=400)
    _, key = issue_token(request.user, form.cleaned_data["name"])
    return _render(request, new_key=key)


@login_required
@require_POST
def token_revoke(request, token_pk):
    try:
        revoke_token(request.user, token_pk)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The token was revoked: programs that use it can no longer sign in with it.")
    return redirect("account")
