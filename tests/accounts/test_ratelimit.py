"""Failed-login throttling against the real Redis (accounts/ratelimit.py)."""

from __future__ import annotations

import logging
import time

import pytest

from accounts import ratelimit
from accounts.ratelimit import login_failed, login_succeeded, login_throttle_check, login_throttled


@pytest.fixture
def limits(settings, redis_client, unique):
    """Small limits, a unique account and address per test, and no keys left behind."""
    settings.GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT = 3
    settings.GATEWAY_LOGIN_MAX_FAILURES_IP = 5
    settings.GATEWAY_LOGIN_WINDOW_SECONDS = 60
    octets = [int(unique[i : i + 2], 16) for i in (0, 2, 4)]
    names = {"account": f"user-{unique}", "ip": "10.{}.{}.{}".format(*octets), "unique": unique}
    yield names
    for key in redis_client.scan_iter(match=ratelimit.KEY_PREFIX + "*"):
        if any(part in key.decode() for part in (names["ip"], *_account_hashes(names))):
            redis_client.delete(key)


def _account_hashes(names) -> list[str]:
    return [
        ratelimit.account_key(f"{p}{names['account']}{s}").rsplit(":", 1)[1]
        for p in ("", "other-")
        for s in ("", "-2", "-3", "-4", "-5", "-6")
    ]


def test_an_account_is_throttled_per_address_after_its_failures(limits):
    account, ip = limits["account"], limits["ip"]
    for i in range(3):
        assert login_throttle_check(ip=ip, account=account) == 0
        counts = login_failed(ip=ip, account=account)
        assert (counts.pair, counts.ip, counts.account) == (i + 1, i + 1, i + 1)
    wait = login_throttle_check(ip=ip, account=account)
    assert 55 <= wait <= 60
    # Not from another address: nobody can lock the owner out from elsewhere.
    assert login_throttle_check(ip="192.0.2.77", account=account) == 0
    assert login_failed(ip="192.0.2.77", account=account).account == 4  # measured across addresses all the same
    assert login_throttle_check(ip=ip, account="other-" + account) == 0  # the address has 2 left


def test_account_names_are_case_insensitive_and_hashed_in_keys(limits, redis_client):
    account, ip = limits["account"], limits["ip"]
    login_failed(ip=ip, account=account.upper())
    login_failed(ip=ip, account=" " + account.capitalize())
    login_failed(ip=ip, account=account)
    assert login_throttle_check(ip=ip, account=account.upper()) > 0
    keys = [k.decode() for k in redis_client.scan_iter(match=ratelimit.KEY_PREFIX + "*")]
    assert ratelimit.account_key(account) in keys and ratelimit.pair_key(ip=ip, account=account) in keys
    assert not any(limits["unique"] in k for k in keys)  # the name itself never appears


def test_throttled_attempts_and_token_failures_are_counted(limits):
    account, ip = limits["account"], limits["ip"]
    assert [login_throttled(ip=ip, account=account) for _ in range(3)] == [1, 2, 3]
    assert login_throttled(ip=ip, account="other-" + account) == 1  # per pair
    assert [ratelimit.token_failed(ip=ip) for _ in range(2)] == [1, 2]
    assert login_throttle_check(ip=ip, account=account) == 0  # neither counts as a failed password


def test_success_clears_the_account_but_not_the_address(limits):
    account, ip = limits["account"], limits["ip"]
    for _ in range(3):
        login_failed(ip=ip, account=account)
    assert login_throttle_check(ip=ip, account=account) > 0
    login_succeeded(ip=ip, account=account)
    assert login_throttle_check(ip=ip, account=account) == 0
    login_failed(ip=ip, account=account + "-2")
    login_failed(ip=ip, account=account + "-3")  # 5 failures from this address in all
    assert login_throttle_check(ip=ip, account=account) > 0


def test_an_address_is_throttled_across_accounts(limits):
    ip = limits["ip"]
    for i in range(5):
        login_failed(ip=ip, account=f"{limits['account']}-{i + 2}")
    assert 55 <= login_throttle_check(ip=ip, account=limits["account"]) <= 60
    assert login_throttle_check(ip="192.0.2.79", account=limits["account"]) == 0


def test_ipv6_addresses_count_per_64(limits):
    g3, g4 = limits["unique"][:4], int(limits["unique"][4:8], 16)
    prefix, neighbour = f"2001:db8:{g3}:{g4:x}", f"2001:db8:{g3}:{g4 ^ 1:x}"
    for i in range(5):
        login_failed(ip=f"{prefix}::{i + 1}", account=f"{limits['account']}-{i + 2}")
    assert login_throttle_check(ip=f"{prefix}:ffff::9", account=limits["account"]) > 0
    assert login_throttle_check(ip=f"{neighbour}::1", account=limits["account"]) == 0
    ratelimit._redis().delete(ratelimit.ip_key(f"{prefix}::1"))


def test_the_window_ends(limits, settings):
    settings.GATEWAY_LOGIN_WINDOW_SECONDS = 1
    account, ip = limits["account"], limits["ip"]
    for _ in range(3):
        login_failed(ip=ip, account=account)
    assert login_throttle_check(ip=ip, account=account) == 1
    time.sleep(1.2)
    assert login_throttle_check(ip=ip, account=account) == 0


def test_a_redis_outage_fails_open_and_is_logged(limits, settings, caplog, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(ratelimit._fail_open, "_last", -1e9)
    account, ip = limits["account"], limits["ip"]
    with caplog.at_level(logging.WARNING, logger="accounts.ratelimit"):
        started = time.monotonic()
        for _ in range(5):
            login_failed(ip=ip, account=account)
        assert login_throttle_check(ip=ip, account=account) == 0
        login_succeeded(ip=ip, account=account)
        assert time.monotonic() - started < 5
    assert "login throttling unavailable" in caplog.text


def test_empty_names_are_not_counted(limits):
    for _ in range(10):
        login_failed(ip="", account="")
    assert login_throttle_check(ip="", account="") == 0
