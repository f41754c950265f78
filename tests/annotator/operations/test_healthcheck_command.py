"""`manage.py healthcheck` (the Docker HEALTHCHECK) asks the running server with a Host
header the server accepts."""
import socket
from urllib.parse import urlparse

import pytest
from django.core.management import CommandError, call_command

from annotator.management.commands.healthcheck import probe_host


@pytest.mark.django_db(transaction=True)
def test_it_succeeds_against_a_live_server_and_can_ask_for_readiness(live_server, settings, capsys):
    settings.ALLOWED_HOSTS = [".label.example.com", "localhost"]  # a name, not the address it connects to
    port = urlparse(live_server.url).port
    call_command("healthcheck", port=port)
    assert '"status": "ok"' in capsys.readouterr().out
    call_command("healthcheck", port=port, ready=True)
    assert '"checks"' in capsys.readouterr().out


def test_it_fails_with_a_sentence_when_nothing_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(CommandError, match="No answer from 127.0.0.1"):
            call_command("healthcheck", port=port, timeout=2)


@pytest.mark.parametrize("hosts, expected", [(["*"], "localhost"), ([".example.com"], "example.com"),
                                             (["label.example.com", "x"], "label.example.com"), ([], "localhost")])
def test_the_probe_host_is_one_the_server_allows(settings, hosts, expected):
    settings.ALLOWED_HOSTS = hosts
    assert probe_host() == expected
