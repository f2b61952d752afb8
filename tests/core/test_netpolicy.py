"""The one outbound address policy (gateway/core/netpolicy.py): the address table, resolution, the switch."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.core.errors import ValidationError
from gateway.core.netpolicy import address_is_public, outbound_url_check

PRIVATE = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "RFC 1918"),
    ("172.16.0.1", "RFC 1918"),
    ("192.168.1.1", "RFC 1918"),
    ("169.254.169.254", "link-local (cloud metadata)"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("::1", "IPv6 loopback"),
    ("::", "IPv6 unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:8.8.8.8", "IPv4-mapped (use the IPv4 address)"),
    ("::7f00:1", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "NAT64 of loopback"),
    ("64:ff9b::808:808", "NAT64 (a translator reaches whatever it embeds)"),
    ("64:ff9b:1::a00:1", "NAT64 local-use prefix"),
    ("2002:7f00:1::", "6to4 of loopback"),
    ("2002:808:808::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("fec0::1", "site-local"),
    ("fe80::1", "link-local"),
    ("fd00::1", "unique local"),
    ("ff02::1", "IPv6 multicast"),
    ("2001:db8::1", "documentation"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize(("address", "why"), PRIVATE, ids=[a for a, _ in PRIVATE])
def test_private_addresses(address: str, why: str) -> None:
    assert not address_is_public(ipaddress.ip_address(address)), why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",  # resolved: the name is not trusted, its addresses are checked
        "http://2130706433/x",  # 127.0.0.1 as one number
        "http://0x7f.1/x",  # 127.0.0.1 in hex/short form
        "http://[64:ff9b::7f00:1]/x",
        "http://[2002:7f00:1::]/x",
        "http://[::ffff:7f00:1]/x",
        "https://[fe80::1]/x",
    ],
)
def test_urls_resolving_to_private_addresses_are_refused(url: str, settings) -> None:
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError, match="non-public address"):
        outbound_url_check(url, what="Webhook URL")


def test_public_literal_passes_and_the_switch_allows_private(settings) -> None:
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    outbound_url_check("https://8.8.8.8/hook", what="Webhook URL")
    outbound_url_check("https://[2606:4700:4700::1111]/hook", what="Webhook URL")
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = True
    outbound_url_check("http://127.0.0.1:8080/x", what="Webhook URL")


def test_unresolvable_and_hostless_urls_are_refused(settings) -> None:
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError, match="does not resolve"):
        outbound_url_check("http://no-such-host.invalid/x", what="Webhook URL")
    with pytest.raises(ValidationError, match="has no host"):
        outbound_url_check("http:///x", what="Webhook URL")


def test_production_default_is_public_only() -> None:
    from gateway.settings import base

    assert base.GATEWAY_OUTBOUND_ALLOW_PRIVATE is False
