"""The one address policy for every outbound URL a tenant or an operator gives us (webhooks, replication targets).

A URL passes when every address its host resolves to is public. Besides what Python's
`ipaddress` calls non-global, these count as private, because each can reach our own network
or cannot be judged from here: IPv4-mapped and IPv4-compatible IPv6, NAT64 (64:ff9b::/96,
64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32), site-local (fec0::/10), link-local,
loopback, CGNAT (100.64.0.0/10), multicast, unspecified, reserved and broadcast.
`GATEWAY_OUTBOUND_ALLOW_PRIVATE` (local and test settings; self-hosted on a private network)
turns the check off. Resolution happens at every check, so a name that later resolves
elsewhere is caught at the next use (webhooks check before each delivery).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from gateway.core.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that embed or translate to an IPv4 address, or are otherwise not ours to call.
_PRIVATE_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated) and ::, ::1
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local-use prefix
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "fec0::/10",  # site-local (deprecated, still routed by some stacks)
        "fe80::/10",  # link-local
        "fc00::/7",  # unique local
        "ff00::/8",  # multicast
        "100::/64",  # discard-only
    )
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def allow_private() -> bool:
    """Whether private addresses are allowed too (GATEWAY_OUTBOUND_ALLOW_PRIVATE)."""
    return bool(getattr(settings, "GATEWAY_OUTBOUND_ALLOW_PRIVATE", False))


def address_is_public(address: IPAddress) -> bool:
    """Whether `address` is a public unicast address that cannot lead back into a private network."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id or address.is_site_local or any(address in net for net in _PRIVATE_V6):
            return False
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_private
    )


def host_addresses(host: str) -> list[IPAddress]:
    """Every address `host` resolves to (a literal resolves to itself); ValidationError if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise ValidationError(f"Host {host!r} does not resolve: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def outbound_url_check(url: str, *, what: str) -> None:
    """Refuse `url` (ValidationError naming `what`) unless its host resolves to public addresses only, or private is allowed."""
    host = urlsplit(url).hostname or ""
    if not host:
        raise ValidationError(f"{what} {url[:200]!r} has no host.")
    if allow_private():
        return
    for address in host_addresses(host):
        if not address_is_public(address):
            raise ValidationError(f"{what} host {host!r} resolves to a non-public address ({address}); refused.")
