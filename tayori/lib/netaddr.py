"""Network addresses: who is really calling, whether they are on an allow-list, and what a
domain name may look like."""

import ipaddress
import re

from django.conf import settings

# A host name as operators type one into settings (lower-case, at least two labels).
DOMAIN_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _parse(ip):
    try:
        return ipaddress.ip_address(ip.strip())
    except (ValueError, AttributeError):
        return None


def _trusted(addr) -> bool:
    return any(addr in ipaddress.ip_network(p, strict=False) for p in settings.TRUSTED_PROXIES)


def client_ip(request) -> str | None:
    """The peer address, or the X-Forwarded-For client when the peer is a trusted proxy.

    Walks X-Forwarded-For from the right and stops at the first address that is not itself a
    trusted proxy, so a client cannot forge its address by prepending entries.
    """
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    if not settings.TRUSTED_PROXIES or not _trusted(peer):
        return str(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        addr = _parse(hop)
        if addr is None:
            break
        if not _trusted(addr):
            return str(addr)
        peer = addr
    return str(peer)


def validate_cidr(value: str) -> str:
    """Normalize a CIDR (IPv4 or IPv6, bare addresses allowed); ValueError when malformed."""
    return str(ipaddress.ip_network(value.strip(), strict=False))


def ip_in_any(ip: str | None, cidrs) -> bool:
    addr = _parse(ip or "")
    if addr is None:
        return False
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        if addr.version == net.version and addr in net:
            return True
    return False
