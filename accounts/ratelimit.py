"""Failed-login throttling in Redis, per account and per client address (fixed windows).

The token endpoint calls `login_throttle_check` before checking credentials (0 = go ahead,
else the seconds for Retry-After), `login_failed` after a failure and `login_succeeded`
after a success (which clears the account's count; the address's count stays).

Each counter's window starts at its first failure and lasts GATEWAY_LOGIN_WINDOW_SECONDS.
Account names are compared lower-case and appear in keys only as a SHA-256; IPv6
addresses count per /64 (one host usually holds a whole /64). If Redis cannot be reached
every login is allowed (fail open, logged): an outage must not lock everyone out, and
password hashing still slows guessing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time

import redis

from accounts.conf import app_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "wharf:login:fail:"
REDIS_TIMEOUT_SECONDS = 0.5  # a login waits at most this long for a sick Redis
_WARN_EVERY_SECONDS = 30.0

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()
_last_warning = 0.0


def _redis() -> redis.Redis:
    url = app_settings.redis_url
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
            )
    return client


def account_key(account: str) -> str | None:
    """The Redis key counting an account's failures (None for an empty name)."""
    name = (account or "").strip().lower()
    return KEY_PREFIX + "acct:" + hashlib.sha256(name.encode()).hexdigest() if name else None


def ip_key(ip: str) -> str | None:
    """The Redis key counting an address's failures (IPv6 per /64; None for an empty address)."""
    value = (ip or "").strip()
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return KEY_PREFIX + "ip:raw:" + hashlib.sha256(value.encode()).hexdigest()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return KEY_PREFIX + "ip:" + str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
        address = address.ipv4_mapped
    return KEY_PREFIX + "ip:" + str(address)


def _counters(*, ip: str, account: str) -> list[tuple[str, int]]:
    pairs = [(account_key(account), app_settings.login_max_failures_account), (ip_key(ip), app_settings.login_max_failures_ip)]
    return [(key, limit) for key, limit in pairs if key is not None]


def _fail_open(exc: Exception, what: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("login throttling unavailable (%s), allowing logins: %s", what, exc)


def login_throttle_check(*, ip: str, account: str) -> int:
    """0 if a login attempt may proceed, else seconds until it may (Retry-After); 0 when Redis is down."""
    counters = _counters(ip=ip, account=account)
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


def login_failed(*, ip: str, account: str) -> None:
    """Count one failed login against the account and the address (a no-op when Redis is down)."""
    counters = _counters(ip=ip, account=account)
    if not counters:
        return
    window = app_settings.login_window_seconds
    try:
        pipe = _redis().pipeline(transaction=True)
        for key, _ in counters:
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        pipe.execute()
    except redis.RedisError as exc:
        _fail_open(exc, "count")


def login_succeeded(*, ip: str, account: str) -> None:
    """Forget the account's failures after a successful login (the address's count stays)."""
    key = account_key(account)
    if key is None:
        return
    try:
        _redis().delete(key)
    except redis.RedisError as exc:
        _fail_open(exc, "clear")
