"""Sign-in lockout with django-axes: the authentication backend that refuses a locked-out
(username, address) and the answer a locked-out request gets (settings: LOGIN_FAILURE_LIMIT,
LOGIN_COOLOFF_MINUTES; the address is client_address.client_ip)."""
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import JsonResponse
from django.shortcuts import render


def lockout_message():
    minutes = settings.LOGIN_COOLOFF_MINUTES
    return (
        f"Too many failed sign-ins for this account from your address. Wait {minutes} minute"
        f"{'s' if minutes != 1 else ''} and try again, or ask an administrator to unlock it."
    )


class LockoutBackend(AxesStandaloneBackend):
    """AxesStandaloneBackend, except that a call without a request is let through to the next
    backend instead of raising: every web sign-in (the login page, the admin's, the token
    endpoint) passes its request, while code that authenticates a user it already knows
    (management commands, the test client's login) has none and no address to lock."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """settings.AXES_LOCKOUT_CALLABLE: 429 with a JSON `detail` under /api/, else the sign-in
    form again with the message. (axes' async middleware passes the credentials where the
    response belongs, so neither argument is relied on.)"""
    message = lockout_message()
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        form = AuthenticationForm(request, data={"username": request.POST.get("username", "")})
        form.errors.clear()
        form.add_error(None, message)
        response = render(request, "registration/login.html", {"form": form, "next": request.GET.get("next", "")},
                          status=429)
    response["Retry-After"] = str(settings.LOGIN_COOLOFF_MINUTES * 60)
    return response
