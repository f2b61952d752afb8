"""Claims and row locks of the replication app (house style rules 5, 6, 24).

- Audit rows are claimed in batches with `FOR UPDATE SKIP LOCKED` and a lease, so concurrent
  audit runs split the work instead of checking the same objects.
- A replica row is claimed with one conditional UPDATE (state and lease checked, row count
  tested), so a duplicate message or a sweep racing the commit hook never copies twice at once.
- A repair takes the registry's per-object-key advisory locks (the ones pushes and GC's object
  deletion take), then `FOR NO KEY UPDATE` on the Blob/Manifest row: GC (which locks rows
  FOR UPDATE SKIP LOCKED) passes over that row until the repaired object is written, and a
  row GC already deleted is not repaired (which would resurrect an object nobody references).
  Pushes linking the blob take KEY SHARE locks and are not blocked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Tenant
from gateway.registry import locks as registry_locks
from gateway.registry.models import Blob, Manifest
from gateway.replication.models import ObjectAudit, ObjectReplica, StorageTarget, TenantReplication

AUDIT_LEASE = timedelta(minutes=10)
REPLICA_LEASE = timedelta(minutes=5)

_RETRYABLE = (ObjectReplica.State.PENDING, ObjectReplica.State.FAILED, ObjectReplica.State.MISMATCH)


def audits_claim(*, tenant_id: int | None, due_before: datetime, limit: int) -> list[int]:
    """Lease up to `limit` audit rows not checked since `due_before` (suspicious first, then least recently checked)."""
    now = timezone.now()
    with transaction.atomic():
        qs = ObjectAudit.objects.filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=due_before))
        qs = qs.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        if tenant_id is not None:
            qs = qs.filter(tenant_id=tenant_id)
        ids = list(
            qs.order_by("-flagged", F("last_checked_at").asc(nulls_first=True), "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            ObjectAudit.objects.filter(pk__in=ids).update(lease_until=now + AUDIT_LEASE)
    return ids


def audits_release(*, ids: list[int]) -> None:
    """Give back leased audit rows that were not checked (the run stopped early)."""
    if ids:
        ObjectAudit.objects.filter(pk__in=ids).update(lease_until=None)


def replica_claim(*, replica_id: int) -> bool:
    """Take a replica row that needs copying and is not held by another worker; counts the attempt."""
    now = timezone.now()
    return bool(
        ObjectReplica.objects.filter(pk=replica_id, state__in=_RETRYABLE)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + REPLICA_LEASE, attempts=F("attempts") + 1, updated_at=now)
    )


def replica_lease_renew(*, replica_id: int) -> None:
    """Extend a held replica lease (called per copied part)."""
    ObjectReplica.objects.filter(pk=replica_id).update(lease_until=timezone.now() + REPLICA_LEASE)


def source_lock(*, blob_id: int | None, manifest_id: int | None, object_keys: list[str]) -> bool:
    """Inside a transaction: the object keys' advisory locks, then the Blob/Manifest row against deletion; False when it is gone.

    The registry's lock order (gateway/registry/locks.py): object keys first, then rows.
    """
    registry_locks.object_keys_lock(object_keys)
    if blob_id is not None:
        return bool(list(Blob.objects.select_for_update(no_key=True).filter(pk=blob_id).values_list("pk", flat=True)))
    if manifest_id is not None:
        return bool(list(Manifest.objects.select_for_update(no_key=True).filter(pk=manifest_id).values_list("pk", flat=True)))
    return False


def storage_target_lock(*, tenant: Tenant | None, name: str) -> StorageTarget | None:
    """The platform target (tenant None) or `tenant`'s own named `name`, locked, or None (API edits: If-Match then change)."""
    return StorageTarget.objects.select_for_update(no_key=True).filter(tenant=tenant, name=name).order_by("pk").first()


def tenant_replication_lock(*, tenant: Tenant) -> TenantReplication | None:
    """Lock the tenant's row (its settings may not exist yet, so the tenant is the lock), then read its settings."""
    Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).order_by("pk").first()
    return TenantReplication.objects.filter(tenant=tenant).select_related("target").first()
