"""Rate limits of the admin API (docs/decisions/0021): fixed windows counted in Redis, per token and per address.

Who is counted: a robot secret per robot, a personal access token per token, a browser session
per user; a request that names nobody (no credentials, or a bad, revoked or expired token) per
client address. Authenticated callers have a read budget (GET, HEAD, OPTIONS) and a separate,
smaller write budget; the address budget is for both. The limits and the window are settings
(GATEWAY_API_RATE_READ, _WRITE, _ANONYMOUS per GATEWAY_API_RATE_WINDOW_SECONDS).

Each window is one Redis counter (`INCR` and its expiry in one script, EVALSHA), so every web process
shares it and the count is exact. Every response says where the caller stands with
`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until the window resets)
and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers); a refused request is a 429
problem with `Retry-After`. If Redis cannot be reached requests are let through (fail open,
logged): an outage of the counter must not take the API down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from accounts.principals import Principal
from gateway.api.redis_store import api_redis
from gateway.core.redis import FailOpenLog, RedisScript

log = logging.getLogger(__name__)

KEY_PREFIX = "wharf:api:rate:"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_now = time.time  # the clock the windows follow (tests stop it)
_fail_open = FailOpenLog(log, "API rate limiting")


@dataclass(frozen=True)
class RateLimit:
    """Where one caller stands in the current window of one policy."""

    policy: str  # read, write or anonymous
    limit: int
    remaining: int
    reset: int  # seconds until the window resets
    window: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f'{self.limit};w={self.window};comment="{self.policy}"',
        }


# INCR, and the window's expiry on its first request: one round trip, the script sent once per process (EVALSHA).
_COUNT = RedisScript("local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n")


def _count(key: str, ttl: int) -> int:
    """The window counter `key` after counting this request (it expires `ttl` seconds after its first)."""
    return int(_COUNT(api_redis(), keys=[key], args=[ttl]))  # type: ignore[call-overload]


def caller_id(request: Request) -> str | None:
    """`robot:<pk>`, `token:<pk>` (a personal access token) or `user:<pk>` (a session); None for nobody."""
    principal = request.auth if isinstance(request.auth, Principal) else None
    if principal is not None and principal.robot is not None:
        return f"robot:{principal.robot.pk}"
    if principal is not None and principal.access_token is not None:
        return f"token:{principal.access_token.pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return None


def _budget(request: Request, caller: str | None) -> tuple[str, int]:
    if caller is None:
        return "anonymous", int(settings.GATEWAY_API_RATE_ANONYMOUS)
    if request.method in READ_METHODS:
        return "read", int(settings.GATEWAY_API_RATE_READ)
    return "write", int(settings.GATEWAY_API_RATE_WRITE)


class ApiRateThrottle(BaseThrottle):
    """One fixed-window counter per (policy, caller); the view finds the outcome in `view.rate_limit`."""

    def __init__(self) -> None:
        self.state: RateLimit | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        caller = caller_id(request)
        policy, limit = _budget(request, caller)
        window = int(settings.GATEWAY_API_RATE_WINDOW_SECONDS)
        now = _now()
        start = int(now // window) * window
        key = f"{KEY_PREFIX}{policy}:{caller or 'ip:' + str(self.get_ident(request))}:{start}"
        try:
            count = _count(key, window + 1)
        except redis.RedisError as exc:
            _fail_open(exc)
            return True
        reset = max(1, math.ceil(start + window - now))
        self.state = RateLimit(policy=policy, limit=limit, remaining=max(0, limit - count), reset=reset, window=window)
        view.rate_limit = self.state
        return count <= limit

    def wait(self) -> float | None:
        return float(self.state.reset) if self.state is not None else None


def rate_limit_headers_set(response: Response, state: RateLimit | None) -> None:
    """Add the caller's RateLimit-* headers to `response` (none when the counter could not be read)."""
    if state is not None:
        for name, value in state.headers().items():
            response[name] = value
