"""`manage.py serve`: the embedded server (HTTP and websockets on one ASGI process)."""
import uvicorn
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the app (pages, REST API and websockets) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to bind (default 8000).")
        parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    def handle(self, *args, host, port, log_level, **options):
        self.stdout.write(f"Serving on http://{host}:{port}/  (Ctrl+C to stop)")
        uvicorn.run(
            "annotator.asgi:application",
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            ws="websockets-sansio",
            proxy_headers=False,
        )
