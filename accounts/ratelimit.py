"""Failed-password throttling in Redis, per (account, client address) and per address (fixed windows).

`accounts.logins.credentials_authenticate` — the one path every password check takes — calls
`login_throttle_check` before checking a password (0 = go ahead, else the seconds for
Retry-After), `login_failed` after a failure, `login_throttled` when it refused an attempt
unchecked, and `login_succeeded` after a success (which clears the pair's count; the
address's count stays).

No counter is per account alone: an attacker elsewhere must not be able to lock the owner
out (docs/decisions/0009). The account's failures from everywhere are still counted, for the
audit log only. Each counter's window starts at its first event and lasts
GATEWAY_LOGIN_WINDOW_SECONDS. Account names are compared lower-case and appear in keys only
inside a SHA-256; IPv6 addresses count per /64 (one host usually holds a whole /64). If Redis
cannot be reached every login is allowed (fail open, logged): an outage must not lock
everyone out, and password hashing still slows guessing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis

from accounts.conf import app_settings
from gateway.core.addresses import address_bucket
from gateway.core.redis import FailOpenLog, redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "wharf:login:fail:"
_fail_open = FailOpenLog(log, "login throttling")


@dataclass(frozen=True)
class FailureCounts:
    """Failures in the current windows: this account from this address, this address, this account anywhere."""

    pair: int = 0
    ip: int = 0
    account: int = 0


def _redis() -> redis.Redis:
    return redis_client(app_settings.redis_url)


def _account_hash(account: str) -> str | None:
    name = (account or "").strip().lower()
    return hashlib.sha256(name.encode()).hexdigest() if name else None


def account_key(account: str) -> str | None:
    """The Redis key counting an account's failures from anywhere (measured, never enforced; None for an empty name)."""
    digest = _account_hash(account)
    return KEY_PREFIX + "acct:" + digest if digest else None


def ip_key(ip: str) -> str | None:
    """The Redis key counting an address's failures (IPv6 per /64; None for an empty address)."""
    part = address_bucket(ip)
    return KEY_PREFIX + "ip:" + part if part else None


def pair_key(*, ip: str, account: str) -> str | None:
    """The Redis key counting an account's failures from one address (None when either is empty)."""
    digest, part = _account_hash(account), address_bucket(ip)
    return KEY_PREFIX + "pair:" + digest + ":" + part if digest and part else None


def _enforced(*, ip: str, account: str) -> list[tuple[str, int]]:
    pairs = [
        (pair_key(ip=ip, account=account), app_settings.login_max_failures_account),
        (ip_key(ip), app_settings.login_max_failures_ip),
    ]
    return [(key, limit) for key, limit in pairs if key is not None]


def login_throttle_check(*, ip: str, account: str) -> int:
    """0 if a password attempt may proceed, else seconds until it may (Retry-After); 0 when Redis is down."""
    counters = _enforced(ip=ip, account=account)
    if not counters:
        return 0
    try:
        pipe = _redis().pipeline(transaction=False)
        for key, _ in counters:
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except redis.RedisError as exc:
        _fail_open(exc, "check")
        return 0
    wait = 0
    for i, (_, limit) in enumerate(counters):
        count, ttl = replies[2 * i], replies[2 * i + 1]
        if count is not None and int(count) >= limit and ttl != -2:  # -2: expired between GET and TTL
            wait = max(wait, ttl if ttl > 0 else app_settings.login_window_seconds)
    return wait


def _count(keys: list[str | None]) -> list[int]:
    """Increment each key (its window starting at its first increment); 0s when Redis is down."""
    window = app_settings.login_window_seconds
    live = [key for key in keys if key is not None]
    try:
        pipe = _redis().pipeline(transaction=True)
        for key in live:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        replies = iter(pipe.execute()[1::2])
    except redis.RedisError as exc:
        _fail_open(exc, "count")
        return [0] * len(keys)
    return [int(next(replies)) if key is not None else 0 for key in keys]


def login_failed(*, ip: str, account: str) -> FailureCounts:
    """Count one failed password against the pair, the address and (measured only) the account; the new counts."""
    pair, per_ip, per_account = _count([pair_key(ip=ip, account=account), ip_key(ip), account_key(account)])
    return FailureCounts(pair=pair, ip=per_ip, account=per_account)


def login_throttled(*, ip: str, account: str) -> int:
    """Count one attempt refused unchecked (per pair, or per address without a name); how many this window (0: Redis down)."""
    key = pair_key(ip=ip, account=account) or ip_key(ip)
    return _count([KEY_PREFIX + "throttled:" + key.removeprefix(KEY_PREFIX) if key else None])[0]


def token_failed(*, ip: str) -> int:
    """Count one wrong token-shaped secret from this address (measured, never enforced); how many this window."""
    part = address_bucket(ip)
    return _count([KEY_PREFIX + "token:" + part if part else None])[0]


def login_succeeded(*, ip: str, account: str) -> None:
    """Forget the pair's failures after a successful password (the address's count stays)."""
    key = pair_key(ip=ip, account=account)
    if key is None:
        return
    try:
        _redis().delete(key)
    except redis.RedisError as exc:
        _fail_open(exc, "clear")
