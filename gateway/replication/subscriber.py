"""Replication's subscription to the registry's event stream: each new blob and manifest is queued for copying.

A blob push event means a new blob, so it is always queued. A manifest push event comes with every
PUT; it is queued unless the tenant's replica already holds that repository's manifest object
(a re-push or a new tag on it), as when the commit hook fired only for a new manifest row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from gateway.registry.services.events import Event
from gateway.replication.models import ObjectKind, ObjectReplica, TenantReplication
from gateway.replication.services import replication_enqueue
from gateway.storage import keys

TYPES = frozenset({(ObjectKind.BLOB.value, "push"), (ObjectKind.MANIFEST.value, "push")})


def _held_manifest_keys(pushes: Sequence[Event], targets: dict[int, int]) -> dict[tuple[int, str], set[str]]:
    """(tenant, digest) → the manifest keys its current target already holds, for the manifests pushed."""
    rows = ObjectReplica.objects.filter(
        kind=ObjectKind.MANIFEST,
        state=ObjectReplica.State.REPLICATED,
        tenant_id__in={e.tenant_id for e in pushes},
        digest__in={e.digest for e in pushes},
        target_id__in=set(targets.values()),
    ).values_list("tenant_id", "target_id", "digest", "replica_keys")
    return {(tenant_id, digest): set(held) for tenant_id, target_id, digest, held in rows if targets.get(tenant_id) == target_id}


def replication_events_handle(*, batch: uuid.UUID, events: Sequence[Event]) -> None:
    """Queue (after the flush commits) a copy of each pushed object a replicating tenant's target lacks; once per object."""
    targets = dict(
        TenantReplication.objects.filter(
            tenant_id__in={e.tenant_id for e in events}, enabled=True, target__enabled=True
        ).values_list("tenant_id", "target_id")
    )
    pushes = [e for e in events if e.tenant_id in targets]
    held = _held_manifest_keys([e for e in pushes if e.kind == ObjectKind.MANIFEST], targets)
    queued: set[tuple[int, str, str, str]] = set()
    for e in pushes:
        if e.kind == ObjectKind.MANIFEST and keys.manifest_key(e.tenant_id, e.repository, e.digest) in held.get(
            (e.tenant_id, e.digest), ()
        ):
            continue
        if (e.tenant_id, e.kind, e.digest, e.repository) not in queued:
            queued.add((e.tenant_id, e.kind, e.digest, e.repository))
            replication_enqueue(tenant_id=e.tenant_id, kind=e.kind, digest=e.digest)
