"""Pull rate limits per plan (docs/decisions/0040): an exact sliding window of PULL_WINDOW_SECONDS in Redis.

Whose budget a pull spends: a member's or one of the tenant's robots' (any credential) spends the
tenant's authenticated budget (`Tenant.pulls_per_window_authenticated`); anybody else — anonymous,
or signed in but not of this tenant — pulling a public repository spends the anonymous budget of
their address (`pulls_per_window_anonymous`; IPv6 per /64) at this tenant. None means unlimited:
then nothing is counted and Redis is not asked.

What counts: a GET of a manifest that is not an index (per platform, as Docker Hub counts). GETs of
an index and HEADs only read where the caller stands (one round trip, no count), and are never
refused; blobs are free. The window is a log of the counted pulls' times (one sorted set per
budget, one script per decision, EVALSHA): a pull counts for exactly PULL_WINDOW_SECONDS, a refused
one not at all. A served GET's event (the event stream's line, `events.event_line`) is appended to
the stream's queue by the same script, so that a limited pull costs one round trip as an unlimited
one does (its RPUSH; docs/decisions/0047). If Redis cannot be reached pulls go through unlimited and
unheaded (fail open, logged at most every 30 s; the event is logged as dropped, as `events.record`
does): a counter's outage must not stop deployments.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import redis
from django.conf import settings
from django.http.response import HttpResponseBase

from accounts.limits import PULL_WINDOW_SECONDS, billing_url
from accounts.models import Tenant
from accounts.principals import Principal
from gateway.core.addresses import address_bucket
from gateway.core.redis import FailOpenLog, RedisScript, redis_client
from gateway.registry import access
from gateway.registry.errors import TooManyRequests
from gateway.registry.services import events

log = logging.getLogger(__name__)

KEY_PREFIX = "wharf:pulls:"
R = TypeVar("R", bound=HttpResponseBase)
_now = time.time  # the clock the window follows (tests pass `now` to pull_window_take instead)
_fail_open = FailOpenLog(log, "pull rate limiting")

# KEYS[1]: the budget's log (score = a counted pull's time in ms), KEYS[2]: the event stream's queue.
# ARGV: now (ms), window (ms), limit, cost (1 counts this pull if under the limit, 0 only reads), a
# unique member for this pull, the pull's event line ('' none), queued only if the pull is let in.
# A pull at t counts while t > now - window. Returns {allowed, count, when (ms) the pull whose leaving
# lets one more in leaves (-1: none will)}.
_TAKE = RedisScript("""
local now, window, limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 1
if cost > 0 then
  if count < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[5])
    redis.call('PEXPIRE', KEYS[1], window)
    count = count + 1
  else
    allowed = 0
  end
end
if allowed == 1 and ARGV[6] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[6])
end
local index = count - limit
if index < 0 then index = 0 end
local entry = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
local frees = -1
if entry[2] then frees = tonumber(entry[2]) + window end
return {allowed, count, frees}
""")


@dataclass(frozen=True)
class WindowState:
    """One budget's window after a decision: whether the pull was let in, how many count now, when one more may."""

    allowed: bool
    count: int
    frees_at_ms: int  # -1: never (a limit of 0)


def pull_window_take(
    *, key: str, limit: int, counted: bool, now_ms: int, window_seconds: int = PULL_WINDOW_SECONDS, event: str = ""
) -> WindowState:
    """Run the window script once on `key` at the time `now_ms` (count this pull if `counted` and under `limit`).

    `event` (an `events.event_line`) is queued on the event stream in the same script when the pull is let in.
    """
    member = os.urandom(8)  # unique per pull; the score holds the time
    cost = 1 if counted else 0
    # With an event, the event stream's client: the request waits for Redis as long as the event's RPUSH would have.
    client = events.redis_client() if event else _redis()
    args: list[str | int | float | bytes] = [now_ms, window_seconds * 1000, limit, cost, member, event]
    reply = _TAKE(client, keys=[key, events.QUEUE_KEY], args=args)
    allowed, count, frees = (int(value) for value in reply)  # type: ignore[attr-defined]
    return WindowState(allowed=bool(allowed), count=count, frees_at_ms=frees)


def _redis() -> redis.Redis:
    return redis_client(settings.REDIS_URL)


@dataclass(frozen=True)
class PullCaller:
    """Who pulls: the client's address and the credential behind the request (Basic principal, or bearer subject)."""

    ip: str
    principal: Principal | None = None
    subject: str = ""
    robot: bool = False
    private: bool = False  # a private repository: only the tenant's members and robots get this far

    def in_tenant(self, tenant: Tenant) -> bool:
        if self.principal is None and not self.subject:
            return False
        return self.private or access.caller_in_tenant(
            tenant=tenant, principal=self.principal, subject=self.subject, robot=self.robot
        )


@dataclass(frozen=True)
class Budget:
    """The budget a pull spends: its Redis key, its limit, and who it is (Docker-RateLimit-Source)."""

    key: str
    limit: int
    source: str
    anonymous: bool


def pull_budget_get(*, tenant: Tenant, caller: PullCaller) -> Budget | None:
    """The budget `caller`'s pulls from `tenant` spend, or None when that budget is unlimited (no lookup, no Redis)."""
    authenticated, anonymous = tenant.pulls_per_window_authenticated, tenant.pulls_per_window_anonymous
    if authenticated is None and anonymous is None:
        return None
    if caller.in_tenant(tenant):
        return None if authenticated is None else Budget(f"{KEY_PREFIX}{tenant.pk}:tenant", authenticated, tenant.slug, False)
    if anonymous is None:
        return None
    bucket = address_bucket(caller.ip) or "unknown"
    return Budget(f"{KEY_PREFIX}{tenant.pk}:ip:{bucket}", anonymous, bucket, True)


@dataclass(frozen=True)
class PullQuota:
    """Where a caller stands in its budget: the figures every manifest response carries."""

    limit: int
    remaining: int
    reset: int  # seconds until one more pull is allowed than now (0: nothing counts yet)
    source: str
    anonymous: bool
    window: int = PULL_WINDOW_SECONDS

    def headers(self) -> dict[str, str]:
        """IETF RateLimit fields whose values Docker Hub's readers also parse (`N;w=21600`), and Docker Hub's source."""
        policy = f"{self.limit};w={self.window}"
        return {
            "RateLimit-Limit": policy,
            "RateLimit-Remaining": f"{self.remaining};w={self.window}",
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f'{policy};comment="{"anonymous" if self.anonymous else "authenticated"}"',
            "Docker-RateLimit-Source": self.source,
        }


def pull_quota_take(*, tenant: Tenant, caller: PullCaller, counted: bool, event: str = "") -> PullQuota | None:
    """Count one pull of `tenant`'s (if `counted`) or only read the caller's standing; 429 TOOMANYREQUESTS when over.

    `event` (the served GET's `events.event_line`) is queued exactly once unless Redis fails: in the window's
    script when a limit applies (never for a refused pull), else with its own RPUSH. None when no limit
    applies (Redis is asked only for the event) or Redis is down (fail open, logged; the event is lost, logged:
    not sent again, since a script that timed out may have queued it).
    """
    budget = pull_budget_get(tenant=tenant, caller=caller)
    if budget is None:
        events.event_push(event)
        return None
    now = _now()
    try:
        state = pull_window_take(key=budget.key, limit=budget.limit, counted=counted, now_ms=int(now * 1000), event=event)
    except redis.RedisError as exc:
        _fail_open(exc)
        if event:
            events.event_dropped(event, exc)
        return None
    if state.frees_at_ms < 0:
        reset = PULL_WINDOW_SECONDS if state.count >= budget.limit else 0
    else:
        reset = max(1, math.ceil(state.frees_at_ms / 1000 - now))
    quota = PullQuota(
        limit=budget.limit,
        remaining=max(0, budget.limit - state.count),
        reset=reset,
        source=budget.source,
        anonymous=budget.anonymous,
    )
    if not state.allowed:
        raise TooManyRequests(
            pull_refusal_message(tenant=tenant, quota=quota, now=now),
            detail={"limit": quota.limit, "window_seconds": quota.window, "retry_after": quota.reset, "source": quota.source},
            headers={**quota.headers(), "Retry-After": str(quota.reset)},
        )
    return quota


def pull_standing_get(*, tenant: Tenant) -> PullQuota | None:
    """Read-only: where the tenant's authenticated budget stands now (counts nothing; one Redis round trip).

    None when that budget is unlimited (Redis not asked) or Redis cannot be read (fail open, logged).
    """
    limit = tenant.pulls_per_window_authenticated
    if limit is None:
        return None
    caller = PullCaller(ip="", private=True, subject=tenant.slug)  # a member by construction: the tenant's own budget
    return pull_quota_take(tenant=tenant, caller=caller, counted=False)


def _pulls(n: int, kind: str = "") -> str:
    return f"{n} {kind}pull{'' if n == 1 else 's'}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def pull_refusal_message(*, tenant: Tenant, quota: PullQuota, now: float) -> str:
    """One line that `docker pull` prints in full: the limit, the window, when the next pull is allowed, how to raise it."""
    hours = quota.window // 3600
    at = datetime.fromtimestamp(now + quota.reset, UTC).strftime("%Y-%m-%d %H:%M UTC")
    billing = billing_url(tenant=tenant)
    if quota.anonymous:
        if quota.limit == 0:
            return (
                f"pull rate limit: {tenant.slug}'s plan allows no anonymous pulls; log in (docker login) as a member"
                f" of {tenant.slug} to pull, or ask its owners to raise the limit at {billing}"
            )
        return (
            f"pull rate limit reached: {_pulls(quota.limit, 'anonymous ')} per {hours} hours from {quota.source} for"
            f" {tenant.slug}'s public repositories; the next pull is allowed in {_duration(quota.reset)} (at {at})."
            f" Members of {tenant.slug}: log in (docker login) to pull with its own limit; its owners can raise"
            f" the limits at {billing}"
        )
    if quota.limit == 0:
        return f"pull rate limit: {tenant.slug}'s plan allows no pulls; raise the limit at {billing}"
    return (
        f"pull rate limit reached: {tenant.slug} has used its {_pulls(quota.limit)} per {hours} hours; the next pull"
        f" is allowed in {_duration(quota.reset)} (at {at}). Raise the limit: {billing}"
    )


def pull_quota_headers_set(response: R, quota: PullQuota | None) -> R:
    """`response` with the quota's headers (none when no limit applies or Redis could not be read)."""
    if quota is not None:
        for name, value in quota.headers().items():
            response[name] = value
    return response
