"""The client's address, for sign-in lockouts and throttles: one rule for django-axes, the
API's throttles and uvicorn (`manage.py serve`).

`X-Forwarded-For` is written by whoever sends the request, so it is believed only when the
connecting peer is a trusted proxy (`TRUSTED_PROXIES`, IPs or CIDRs). The header is then read
from the right: each hop a trusted proxy appended is skipped, and the first address that is
not a trusted proxy is the client. Anything left of it was written by the client and is
ignored, so a rotating header never makes a new client. This is the rule uvicorn's
`--forwarded-allow-ips` applies; it is written out here (a few lines) because Django REST
framework's `NUM_PROXIES` counts hops instead of checking who sent them, and django-ipware
(axes' default) takes the leftmost address unless told a fixed proxy count.
"""
import functools
import ipaddress

from django.conf import settings


@functools.lru_cache(maxsize=8)
def _networks(entries):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"TRUSTED_PROXIES has {entry!r}, which is not an IP address or network (such as 10.0.0.0/8)."
            ) from exc
    return tuple(networks)


def trusted_networks():
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _address(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(address, networks=None):
    networks = trusted_networks() if networks is None else networks
    parsed = address if isinstance(address, ipaddress._BaseAddress) else _address(address or "")
    return parsed is not None and any(parsed in network for network in networks)


def client_ip_from(peer, forwarded_for):
    """The client's address, given the connecting peer's address and the X-Forwarded-For
    header (or None)."""
    networks = trusted_networks()
    client = peer
    if not networks or not forwarded_for or not is_trusted_proxy(peer, networks):
        return client
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        parsed = _address(hop)
        if parsed is None:
            break  # garbage from the client side: stop at the last trusted hop's word
        client = str(parsed)
        if not is_trusted_proxy(parsed, networks):
            break
    return client


def client_ip(request):
    """The client's address of a Django (or DRF) request: settings.AXES_CLIENT_IP_CALLABLE."""
    meta = request.META
    return client_ip_from(meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR"))
