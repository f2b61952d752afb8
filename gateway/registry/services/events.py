"""Usage events (push/pull of blobs and manifests), buffered in Redis and flushed by a task.

A pull must not cost a database write, so each event is one RPUSH of a compact JSON line
onto a Redis list; `usage.usage_events_flush` (Celery, every minute) moves them into
PostgreSQL in batches, without loss, and updates last_pulled_at.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from django.conf import settings

from accounts.models import Tenant

log = logging.getLogger(__name__)
QUEUE_KEY = "wharf:usage:events"
_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """The Redis client for usage events (one per REDIS_URL per process)."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client


def record(
    *, tenant: Tenant, repository: str, digest: str, size: int, kind: str, direction: str, mode: str = "proxied", reference: str = ""
) -> None:
    """Queue one usage event. Never fails the request: a Redis hiccup loses the event, logged."""
    event = {
        "t": tenant.pk, "r": repository, "d": digest, "b": int(size), "k": kind, "dir": direction, "m": mode,
        "ref": reference, "ts": round(time.time(), 3),
    }
    try:
        redis_client().rpush(QUEUE_KEY, json.dumps(event, separators=(",", ":")))
    except redis.RedisError as exc:
        log.warning("usage event dropped: %s", exc, extra={"event": event})
