"""The usage meter: the registry's own subscriber to its event stream (services/stream.py).

Every push and pull becomes a UsageEvent row, and a manifest pull moves last_pulled_at forward
(retention reads it), in the flush's transaction. `(batch, seq)` is unique, so even a batch
delivered twice would insert nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q

from gateway.registry.models import Manifest, Tag, UsageEvent
from gateway.registry.services import events
from gateway.registry.services.events import Event

USAGE_TYPES = events.USAGE_TYPES


def _touch_pulled(pulls: Sequence[Event]) -> tuple[int, int]:
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


def usage_events_store(*, batch: uuid.UUID, events: Sequence[Event]) -> None:
    """Store a batch's pushes and pulls as UsageEvent rows and bump last_pulled_at; replay-safe on (batch, seq)."""
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                tenant_id=e.tenant_id,
                repository_name=e.repository,
                digest=e.digest,
                bytes=e.size,
                kind=e.kind,
                direction=e.direction,
                mode=e.mode,
                reference=e.reference,
                occurred_at=e.occurred_at,
                batch=batch,
                seq=e.seq,
            )
            for e in events
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    _touch_pulled(events)
