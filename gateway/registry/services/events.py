"""The registry's event stream, producing side: what happened, one Redis RPUSH each; and who listens.

A push or pull must not cost a database write, so `record` appends one compact JSON line to a
Redis list, written without waiting for Redis's reply (a ReplylessSender, docs/decisions/0054;
`event_line` is its one format: a manifest GET of a pull-limited tenant is appended by the pull
limiter's script, in the round trip that counts it, docs/decisions/0047);
`stream.events_flush` (Celery, every minute) takes a batch off it and hands it, in
order and exactly once, to every subscriber (decision 0014). Subscribers are the layers above
the registry (replication, and later webhooks and billing) plus the registry's own usage meter;
each registers with `subscribe` from its AppConfig.ready(), so the registry imports none of them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings

from accounts.models import Tenant
from gateway.core.redis import replyless_sender
from gateway.registry.models import UsageEvent

log = logging.getLogger(__name__)
# The list's name from when it carried usage only: events queued before a deploy stay readable.
QUEUE_KEY = "wharf:usage:events"
# The stream's vocabulary. Usage counts blob and manifest pushes and pulls (UsageEvent's choices);
# the stream also says when a manifest is deleted and when a tag is moved (push) or deleted.
KINDS: tuple[str, ...] = (*UsageEvent.Kind.values, "tag")
DIRECTIONS: tuple[str, ...] = (*UsageEvent.Direction.values, "delete")
MODES: tuple[str, ...] = tuple(UsageEvent.Mode.values)
USAGE_TYPES = frozenset((kind, direction) for kind in UsageEvent.Kind.values for direction in UsageEvent.Direction.values)
_clients: dict[str, redis.Redis] = {}
SOCKET_TIMEOUT = 2.0


@dataclass(frozen=True)
class Event:
    """One event as subscribers receive it. A blob push means a new blob; a manifest push is every PUT; a tag
    push is an existing tag moved (digest: the manifest it now names; reference: the tag); deletes name what went."""

    seq: int  # position in its batch: the order in which the registry recorded it
    tenant_id: int
    repository: str
    digest: str
    size: int
    kind: str
    direction: str
    mode: str
    reference: str  # the tag or digest the client named (manifests); empty for blobs
    occurred_at: datetime
    # A manifest pull's media type (billing counts image manifests, not indexes, as pulls); empty
    # for other events and for pulls queued before the field existed.
    media_type: str = ""


Handler = Callable[..., None]  # handler(*, batch: uuid.UUID, events: Sequence[Event]) -> None


@dataclass(frozen=True)
class Subscription:
    name: str
    types: frozenset[tuple[str, str]]  # (kind, direction) pairs it receives
    handler: Handler


_subscriptions: dict[str, Subscription] = {}


def subscribe(*, name: str, types: set[tuple[str, str]] | frozenset[tuple[str, str]], handler: Handler) -> None:
    """Hand `handler` every flushed event of these (kind, direction) types, inside the flush's transaction; idempotent per name."""
    unknown = {t for t in types if t[0] not in KINDS or t[1] not in DIRECTIONS}
    if not types or unknown:
        raise ValueError(
            f"subscription {name!r}: types must be (kind, direction) pairs of {KINDS} x {DIRECTIONS}, got {unknown or types!r}"
        )
    _subscriptions[name] = Subscription(name=name, types=frozenset(types), handler=handler)


def subscriptions() -> list[Subscription]:
    """Every subscription, in the order they were first made (app order)."""
    return list(_subscriptions.values())


def deliver(*, batch: uuid.UUID, events: Sequence[Event]) -> None:
    """Hand each subscriber its events of the batch, in order; an exception rolls the whole batch back to be replayed."""
    for sub in subscriptions():
        chosen = [e for e in events if (e.kind, e.direction) in sub.types]
        if chosen:
            sub.handler(batch=batch, events=chosen)


def redis_client() -> redis.Redis:
    """The Redis client for the event stream (one per REDIS_URL per process)."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)
    return client


def event_line(
    *,
    tenant: Tenant,
    repository: str,
    digest: str,
    size: int,
    kind: str,
    direction: str,
    mode: str = "proxied",
    reference: str = "",
    media_type: str = "",
) -> str:
    """One event as the JSON line the queue holds (the stream's one format); "" when recording is off (benchmarks only)."""
    if not settings.GATEWAY_EVENTS_RECORD:
        return ""
    event = {
        "t": tenant.pk,
        "r": repository,
        "d": digest,
        "b": int(size),
        "k": kind,
        "dir": direction,
        "m": mode,
        "ref": reference,
        "ts": round(time.time(), 3),
    }
    if media_type:
        event["mt"] = media_type
    return json.dumps(event, separators=(",", ":"))


def event_push(line: str) -> None:
    """Queue one event line (`event_line`; "" queues nothing) with one RPUSH whose reply nobody waits for
    (gateway.core.redis.ReplylessSender, docs/decisions/0054). Never fails the request: logged if lost."""
    if not line:
        return
    try:
        replyless_sender(settings.REDIS_URL, timeout=SOCKET_TIMEOUT).send("RPUSH", QUEUE_KEY, line)
    except redis.RedisError as exc:
        event_dropped(line, exc)


def event_dropped(line: str, exc: Exception) -> None:
    """Say that an event could not be queued (Redis failed): the one log line for a lost event."""
    log.warning("usage event dropped: %s", exc, extra={"event": line})


def record(
    *,
    tenant: Tenant,
    repository: str,
    digest: str,
    size: int,
    kind: str,
    direction: str,
    mode: str = "proxied",
    reference: str = "",
    media_type: str = "",
) -> None:
    """Queue one event. Never fails the request: a Redis hiccup loses the event, logged."""
    event_push(
        event_line(
            tenant=tenant,
            repository=repository,
            digest=digest,
            size=size,
            kind=kind,
            direction=direction,
            mode=mode,
            reference=reference,
            media_type=media_type,
        )
    )
