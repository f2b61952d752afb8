"""Client addresses as every limiter sees them: REMOTE_ADDR (never X-Forwarded-For, docs/decisions/0009), IPv6 per /64."""

from __future__ import annotations

import hashlib
import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The caller's address: REMOTE_ADDR, or "unknown" without one."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def address_bucket(ip: str) -> str | None:
    """What one client is counted as: an IPv4 address (IPv4-mapped IPv6 too), an IPv6 /64, a hash of anything else; None if empty.

    One host usually holds a whole IPv6 /64, so counting single IPv6 addresses would let it dodge every limit.
    """
    value = (ip or "").strip()
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "raw:" + hashlib.sha256(value.encode()).hexdigest()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
        address = address.ipv4_mapped
    return str(address)
