"""`manage.py healthcheck`: ask the running server for /healthz (or /readyz with --ready) and
exit 0 when it answers 200, 1 otherwise; the Docker image's HEALTHCHECK. It sends a Host
header the server accepts (the first concrete name of ALLOWED_HOSTS), so the probe works
whatever names the deployment allows."""
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def probe_host():
    for host in settings.ALLOWED_HOSTS:
        if host == "*":
            return "localhost"
        if host:
            return host.lstrip(".")  # ".example.com" allows example.com itself
    return "localhost"


class Command(BaseCommand):
    help = "Exit 0 when the server on this machine answers /healthz (or /readyz) with 200."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="The server's port (default 8000).")
        parser.add_argument("--ready", action="store_true", help="Ask /readyz (database, channel layer, "
                                                                 "storage, trainer) instead of /healthz.")
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait (default 5).")

    def handle(self, *args, port, ready, timeout, **options):
        path = "/readyz" if ready else "/healthz"
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": probe_host()})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a fixed local URL
                body = response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{path} answered {exc.code}: {exc.read().decode(errors='replace')[:500]}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise CommandError(f"No answer from 127.0.0.1:{port}{path}: {exc}") from exc
        self.stdout.write(body)
