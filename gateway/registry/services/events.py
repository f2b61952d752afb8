"""Usage events (push/pull of blobs and manifests), buffered in Redis and flushed by a task.

A pull must not cost a database write, so each event is one RPUSH of a compact JSON line
onto a Redis list; `usage_events_flush` (Celery, every minute) moves them into
PostgreSQL in batches and updates tags' last_pulled_at / last_pushed_at.
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


def _redis() -> redis.Redis:
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
        _redis().rpush(QUEUE_KEY, json.dumps(event, separators=(",", ":")))
    except redis.RedisError as exc:
        log.warning("usage event dropped: %s", exc, extra={"event": event})


def drain(max_items: int) -> list[dict]:
    """Pop up to max_items queued events (oldest first)."""
    client = _redis()
    pipe = client.pipeline()
    pipe.lrange(QUEUE_KEY, 0, max_items - 1)
    pipe.ltrim(QUEUE_KEY, max_items, -1)
    raw, _ = pipe.execute()
    return [json.loads(x) for x in raw]
