"""The client's address: X-Forwarded-For only from a trusted proxy, read from the right."""
import pytest
from django.test import RequestFactory

from annotator.accounts.client_address import client_ip, client_ip_from


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip_from("198.51.100.7", "203.0.113.1") == "198.51.100.7"


def test_a_header_from_an_untrusted_peer_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    assert client_ip_from("198.51.100.7", "203.0.113.1, 10.0.0.1") == "198.51.100.7"


def test_a_trusted_proxy_names_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip_from("10.0.0.1", "203.0.113.1") == "203.0.113.1"


def test_the_rightmost_untrusted_hop_is_the_client(settings):
    # The client wrote "1.2.3.4" itself; the proxies appended the rest.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.10"]
    assert client_ip_from("10.0.0.1", "1.2.3.4, 203.0.113.1, 192.0.2.10, 10.0.0.2") == "203.0.113.1"


def test_a_chain_of_trusted_hops_only_ends_at_the_leftmost(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip_from("10.0.0.1", "10.0.0.3, 10.0.0.2") == "10.0.0.3"


def test_garbage_in_the_header_stops_at_the_last_trusted_hop(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip_from("10.0.0.1", "not-an-address") == "10.0.0.1"
    assert client_ip_from("10.0.0.1", "203.0.113.9, junk, 10.0.0.2") == "10.0.0.2"


def test_ipv6_proxies_and_clients(settings):
    settings.TRUSTED_PROXIES = ["fd00::/8"]
    assert client_ip_from("fd00::1", "2001:db8::5") == "2001:db8::5"


def test_a_bad_entry_is_named(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.300"]
    with pytest.raises(ValueError, match="10.0.0.300"):
        client_ip_from("10.0.0.1", "203.0.113.1")


def test_it_reads_a_django_request(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert client_ip(request) == "203.0.113.1"


@pytest.mark.parametrize("trusted, peer, header", [
    ([], "198.51.100.7", "203.0.113.1"),
    (["10.0.0.1"], "198.51.100.7", "203.0.113.1, 10.0.0.1"),
    (["10.0.0.0/8"], "10.0.0.1", "203.0.113.1"),
    (["10.0.0.0/8", "192.0.2.10"], "10.0.0.1", "1.2.3.4, 203.0.113.1, 192.0.2.10, 10.0.0.2"),
])
def test_serve_gives_uvicorn_the_same_rule(settings, trusted, peer, header):
    """`manage.py serve` passes TRUSTED_PROXIES to uvicorn, whose proxy middleware then puts the
    client the app's own rule names into the ASGI scope."""
    import asyncio

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from annotator.management.commands.serve import proxy_options

    settings.TRUSTED_PROXIES = trusted
    options = proxy_options(trusted)
    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"][0]

    wrapped = ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"]) if options[
        "proxy_headers"] else app
    scope = {"type": "http", "client": (peer, 5000), "scheme": "http",
             "headers": [(b"x-forwarded-for", header.encode())]}
    asyncio.run(wrapped(scope, None, None))
    assert seen["client"] == client_ip_from(peer, header)
