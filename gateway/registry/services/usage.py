"""Usage events: from the Redis buffer (services/events.py) into PostgreSQL.

Delivery is at-least-once from Redis and exactly-once into the table, with a processing list:

1. Claim. One Lua script atomically moves up to `max_items` events from the queue
   (`wharf:usage:events`) to a processing list and stores a fresh batch id next to it. While
   the processing list is not empty — a previous flush failed or died before acknowledging —
   the script returns that same batch again (same id, same order) and takes nothing new, so
   a batch is retried until it is stored.
2. Store. In one transaction: the rows, each with (batch, seq), unique, inserted with
   ON CONFLICT DO NOTHING, so a replay of a batch that was stored but not acknowledged
   inserts nothing; and the last_pulled_at bumps, which only ever move forward.
3. Acknowledge. A second script deletes the processing list only if it still holds this
   batch id (a slower concurrent flush of the same batch cannot drop a newer one).

So when the insert fails nothing is lost: the events stay in Redis and the next flush (the
task's retry, or the next minute) replays them. A plain LRANGE + LTRIM would remove events
from Redis before they are in PostgreSQL, so it is not used.

Events are dropped, with a log line, only when they can never be stored: malformed ones
(they would block the queue forever) and those of tenants that no longer exist.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.db import transaction
from django.db.models import Q

from accounts.models import Tenant
from gateway.registry.models import Manifest, Tag, UsageEvent
from gateway.registry.services import events

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class _Event:
    tenant_id: int
    repository: str
    digest: str
    size: int
    kind: str
    direction: str
    mode: str
    reference: str
    occurred_at: datetime


def _text(doc: dict[str, Any], field: str, max_length: int, *, required: bool = True) -> str:
    value = doc.get(field, "")
    if not isinstance(value, str) or (required and not value) or len(value) > max_length or "\x00" in value:
        raise ValueError(f"field {field!r} must be a string of at most {max_length} characters")
    return value


def _parse(raw: bytes) -> _Event:
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
    kind, direction, mode = doc.get("k"), doc.get("dir"), doc.get("m", UsageEvent.Mode.PROXIED)
    if kind not in UsageEvent.Kind.values:
        raise ValueError(f"field 'k' must be one of {UsageEvent.Kind.values}")
    if direction not in UsageEvent.Direction.values:
        raise ValueError(f"field 'dir' must be one of {UsageEvent.Direction.values}")
    if mode not in UsageEvent.Mode.values:
        raise ValueError(f"field 'm' must be one of {UsageEvent.Mode.values}")
    return _Event(
        tenant_id=tenant_id,
        repository=_text(doc, "r", 255),
        digest=_text(doc, "d", 135),
        size=size,
        kind=kind,
        direction=direction,
        mode=mode,
        reference=_text(doc, "ref", 255, required=False),
        occurred_at=datetime.fromtimestamp(ts, tz=UTC),
    )


def _claim(client: redis.Redis, max_items: int) -> tuple[str, list[bytes]]:
    batch, items = client.eval(_CLAIM, 3, events.QUEUE_KEY, PROCESSING_KEY, BATCH_KEY, max_items, str(uuid.uuid4()))
    return (batch.decode() if isinstance(batch, bytes) else str(batch or "")), list(items)


def _ack(client: redis.Redis, batch: str) -> bool:
    return bool(client.eval(_ACK, 2, PROCESSING_KEY, BATCH_KEY, batch))


def _touch_pulled(pulls: list[_Event]) -> tuple[int, int]:
    """Move last_pulled_at forward: one UPDATE per distinct (repository, tag) and per (repository, digest)."""
    tags: dict[tuple[int, str, str], datetime] = {}
    manifests: dict[tuple[int, str, str], datetime] = {}
    for e in pulls:
        if e.direction != UsageEvent.Direction.PULL or e.kind != UsageEvent.Kind.MANIFEST:
            continue
        key = (e.tenant_id, e.repository, e.digest)
        manifests[key] = max(manifests.get(key, e.occurred_at), e.occurred_at)
        if e.reference and ":" not in e.reference:
            key = (e.tenant_id, e.repository, e.reference)
            tags[key] = max(tags.get(key, e.occurred_at), e.occurred_at)
    # Sorted, so concurrent flushes lock rows in the same order.
    for (tenant_id, repository, name), ts in sorted(tags.items()):
        Tag.objects.filter(tenant_id=tenant_id, repository__name=repository, name=name).filter(
            Q(last_pulled_at__isnull=True) | Q(last_pulled_at__lt=ts)
        ).update(last_pulled_at=ts)
    for (tenant_id, repository, digest), ts in sorted(manifests.items()):
        Manifest.objects.filter(tenant_id=tenant_id, repository__name=repository, digest=digest).filter(
            Q(last_pulled_at__isnull=True) | Q(last_pulled_at__lt=ts)
        ).update(last_pulled_at=ts)
    return len(tags), len(manifests)


def usage_events_flush(*, max_items: int = 5000) -> int:
    """Store up to max_items queued usage events and bump last_pulled_at; returns events taken off the queue (replay-safe)."""
    if not isinstance(max_items, int) or isinstance(max_items, bool) or not 1 <= max_items <= MAX_BATCH:
        raise ValueError(f"max_items must be an integer from 1 to {MAX_BATCH}, got {max_items!r}")
    client = events.redis_client()
    batch, raw_items = _claim(client, max_items)
    if not raw_items:
        return 0
    parsed: list[tuple[int, _Event]] = []
    malformed = 0
    for seq, raw in enumerate(raw_items):
        try:
            parsed.append((seq, _parse(raw)))
        except ValueError as exc:
            malformed += 1
            log.warning("usage event dropped, malformed: %s", exc, extra={"event": raw[:500]})
    try:
        batch_id = uuid.UUID(batch)
    except ValueError:  # only this module writes the key; still, never let a bad id block the queue
        batch_id = uuid.uuid5(uuid.NAMESPACE_URL, f"wharf-usage-batch:{batch}")
    with transaction.atomic():
        live = set(Tenant.objects.filter(pk__in={e.tenant_id for _, e in parsed}).values_list("pk", flat=True))
        kept = [(seq, e) for seq, e in parsed if e.tenant_id in live]
        UsageEvent.objects.bulk_create(
            [
                UsageEvent(
                    tenant_id=e.tenant_id, repository_name=e.repository, digest=e.digest, bytes=e.size, kind=e.kind,
                    direction=e.direction, mode=e.mode, reference=e.reference, occurred_at=e.occurred_at,
                    batch=batch_id, seq=seq,
                )
                for seq, e in kept
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        tags_touched, manifests_touched = _touch_pulled([e for _, e in kept])
    if not _ack(client, batch):
        log.info("usage batch %s was acknowledged by a concurrent flush", batch)
    log.info(
        "usage events flushed: %d taken, %d stored, %d of deleted tenants, %d malformed",
        len(raw_items), len(kept), len(parsed) - len(kept), malformed,
        extra={"batch": batch, "tags_touched": tags_touched, "manifests_touched": manifests_touched},
    )
    return len(raw_items)
