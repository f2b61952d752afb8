"""Daily snapshots of a tenant's stored bytes (models.StorageSnapshot): the history behind the dashboard's storage charts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from accounts.models import Tenant
from gateway.registry.models import StorageSnapshot
from gateway.registry.usage_selectors import usage_storage_get

_FIELDS = ("stored_bytes", "manifest_bytes", "unique_bytes", "shared_bytes", "unreferenced_bytes")


def storage_snapshot_take(*, tenant: Tenant, day: date | None = None) -> StorageSnapshot:
    """Record what the tenant stores now as the figures of `day` (default: today, UTC); idempotent, a re-run replaces that day's row."""
    figures = usage_storage_get(tenant=tenant)
    snapshot, _ = StorageSnapshot.objects.update_or_create(
        tenant=tenant,
        day=day or datetime.now(UTC).date(),
        defaults={name: figures[name] for name in _FIELDS},
    )
    return snapshot


def storage_snapshot_take_by_id(*, tenant_id: int) -> StorageSnapshot | None:
    """`storage_snapshot_take` for today by tenant id; None (quietly) when the tenant is gone or being deleted."""
    tenant = Tenant.objects.filter(pk=tenant_id).exclude(status=Tenant.Status.DELETING).first()
    return storage_snapshot_take(tenant=tenant) if tenant is not None else None
