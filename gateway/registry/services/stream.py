"""The registry's event stream, flushing side: from the Redis list (services/events.py) to the subscribers.

Delivery is at-least-once from Redis and exactly-once to the subscribers, with a processing list:

1. Claim. One Lua script atomically moves up to `max_items` events from the queue
   (`wharf:usage:events`) to a processing list and stores a fresh batch id next to it. While
   the processing list is not empty — a previous flush failed or died before acknowledging —
   the script returns that same batch again (same id, same order) and takes nothing new, so
   a batch is retried until it is stored. The list is one FIFO, so events come out in the
   order they were recorded, per tenant too.
2. Deliver. In one transaction: an EventBatch row for the batch id (a replay of a batch that
   was delivered but not acknowledged finds it and delivers nothing), then every subscriber's
   work (services/events.py `deliver`: the usage rows, replication's copies after commit, ...).
   A subscriber that raises rolls all of it back; the events stay claimed and are replayed.
3. Acknowledge. A second script deletes the processing list only if it still holds this
   batch id (a slower concurrent flush of the same batch cannot drop a newer one).

A plain LRANGE + LTRIM would remove events from Redis before they are in PostgreSQL, so it is
not used. Events are dropped, with a log line, only when they can never be delivered: malformed
ones (they would block the queue forever) and those of tenants that no longer exist.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from django.db import transaction

from accounts.models import Tenant
from gateway.core.errors import ServiceUnavailable
from gateway.registry.models import EventBatch
from gateway.registry.services import events
from gateway.registry.services.events import Event

log = logging.getLogger(__name__)

# Key names from when the stream carried usage only: a batch claimed before a deploy is still replayed.
PROCESSING_KEY = "wharf:usage:processing"
BATCH_KEY = "wharf:usage:processing:batch"
MAX_BATCH = 50_000
_MAX_TS = 2**34  # year 2514: anything later is a corrupt timestamp

# KEYS: queue, processing, batch id. ARGV: max items, a new batch id.
# Returns {batch id, events}; an unacknowledged batch is returned again before anything new.
_CLAIM = """
if redis.call('LLEN', KEYS[2]) > 0 then
  local batch = redis.call('GET', KEYS[3])
  if not batch then
    batch = ARGV[2]
    redis.call('SET', KEYS[3], batch)
  end
  return {batch, redis.call('LRANGE', KEYS[2], 0, -1)}
end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then
  return {'', items}
end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('SET', KEYS[3], ARGV[2])
return {ARGV[2], items}
"""

# KEYS: processing, batch id. ARGV: the batch id being acknowledged.
_ACK = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""


def _text(doc: dict[str, Any], field: str, max_length: int, *, required: bool = True) -> str:
    value = doc.get(field, "")
    if not isinstance(value, str) or (required and not value) or len(value) > max_length or "\x00" in value:
        raise ValueError(f"field {field!r} must be a string of at most {max_length} characters")
    return value


def _parse(seq: int, raw: bytes) -> Event:
    """One queued JSON line as an event; ValueError says what is wrong with it."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    tenant_id, size, ts = doc.get("t"), doc.get("b"), doc.get("ts")
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool) or tenant_id <= 0:
        raise ValueError("field 't' must be a positive integer")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63:
        raise ValueError("field 'b' must be a non-negative integer")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not 0 < ts < _MAX_TS:
        raise ValueError("field 'ts' must be a unix time")
    kind, direction, mode = doc.get("k"), doc.get("dir"), doc.get("m", "proxied")
    for field, value, allowed in (("k", kind, events.KINDS), ("dir", direction, events.DIRECTIONS), ("m", mode, events.MODES)):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"field {field!r} must be one of {list(allowed)}")
    assert isinstance(kind, str) and isinstance(direction, str) and isinstance(mode, str)  # checked just above
    return Event(
        seq=seq,
        tenant_id=tenant_id,
        repository=_text(doc, "r", 255),
        digest=_text(doc, "d", 135),
        size=size,
        kind=kind,
        direction=direction,
        mode=mode,
        reference=_text(doc, "ref", 255, required=False),
        occurred_at=datetime.fromtimestamp(ts, tz=UTC),
        media_type=_text(doc, "mt", 255, required=False),
    )


def _claim(client: redis.Redis, max_items: int) -> tuple[str, list[bytes]]:
    reply: Any = client.eval(_CLAIM, 3, events.QUEUE_KEY, PROCESSING_KEY, BATCH_KEY, max_items, str(uuid.uuid4()))
    batch, items = reply  # the script answers [batch id, items]
    return (batch.decode() if isinstance(batch, bytes) else str(batch or "")), list(items)


def _ack(client: redis.Redis, batch: str) -> bool:
    return bool(client.eval(_ACK, 2, PROCESSING_KEY, BATCH_KEY, batch))


def _parse_all(raw_items: list[bytes]) -> tuple[list[Event], int]:
    """The well-formed events (with their position in the batch) and how many were malformed (logged)."""
    parsed: list[Event] = []
    malformed = 0
    for seq, raw in enumerate(raw_items):
        try:
            parsed.append(_parse(seq, raw))
        except ValueError as exc:
            malformed += 1
            log.warning("usage event dropped, malformed: %s", exc, extra={"event": raw[:500]})
    return parsed, malformed


def events_flush(*, max_items: int = 5000) -> int:
    """Deliver up to max_items queued events to the subscribers, once; returns events taken off the queue (replay-safe)."""
    if not isinstance(max_items, int) or isinstance(max_items, bool) or not 1 <= max_items <= MAX_BATCH:
        raise ValueError(f"max_items must be an integer from 1 to {MAX_BATCH}, got {max_items!r}")
    client = events.redis_client()
    batch, raw_items = _claim(client, max_items)
    if not raw_items:
        return 0
    parsed, malformed = _parse_all(raw_items)
    try:
        batch_id = uuid.UUID(batch)
    except ValueError:  # only this module writes the key; still, never let a bad id block the queue
        batch_id = uuid.uuid5(uuid.NAMESPACE_URL, f"wharf-usage-batch:{batch}")
    kept: list[Event] = []
    with transaction.atomic():
        # A concurrent flush of the same batch waits here on the primary key, then finds it.
        _, fresh = EventBatch.objects.get_or_create(pk=batch_id, defaults={"events": len(raw_items)})
        if fresh:
            live = set(Tenant.objects.filter(pk__in={e.tenant_id for e in parsed}).values_list("pk", flat=True))
            kept = [e for e in parsed if e.tenant_id in live]
            events.deliver(batch=batch_id, events=kept)
    if not _ack(client, batch):
        log.info("event batch %s was acknowledged by a concurrent flush", batch)
    log.info(
        "events flushed: %d taken, %d delivered, %d of deleted tenants, %d malformed%s",
        len(raw_items),
        len(kept),
        len(parsed) - len(kept) if fresh else 0,
        malformed,
        "" if fresh else " (a replay: delivered before)",
        extra={"batch": batch},
    )
    return len(raw_items)


def events_backlog() -> dict[str, int]:
    """Events recorded and not yet delivered: `queued` (waiting) and `processing` (claimed by a flush not yet acknowledged).

    Raises ServiceUnavailable (503) when Redis cannot be reached.
    """
    client = events.redis_client()
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.llen(events.QUEUE_KEY)
            pipe.llen(PROCESSING_KEY)
            queued, processing = pipe.execute()
    except redis.RedisError as exc:
        raise ServiceUnavailable("The event backlog is unavailable: Redis cannot be reached.") from exc
    return {"queued": int(queued), "processing": int(processing)}
