"""Daily storage reconciliation (docs/decisions/0041): what the database meters against what the bucket holds.

Metered: every Blob row of the tenant (its object at `storage_key`) and every Manifest row (its exact
bytes at `keys.manifest_key`, one per repository) — the `stored_bytes` the hourly storage samples
bill. Actual: every object under the tenant's prefix except the small bookkeeping ones the meter
does not bill (blob index objects, tag objects, upload tails), which are tallied as skipped. An
object where no row points (written behind the registry's back, an upload whose row never
committed, GC between deleting the row and the object) counts in `actual` and as unexpected; a row
whose object is gone counts in `metered` and as missing. Pushes during the listing can show as a
small drift for that day; tomorrow's run says whether it stays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from accounts.models import Tenant
from billing.models import StorageDrift
from gateway.registry.models import Blob, Manifest
from gateway.registry.stores import store_for
from gateway.storage import keys


def _skipped(key: str, tenant_id: int) -> bool:
    """Bookkeeping objects the meter does not bill: blob index objects, tag objects, upload tails."""
    return (
        key.startswith(keys.blob_index_prefix(tenant_id))
        or (key.startswith(keys.repos_prefix(tenant_id)) and "/_tags/" in key)
        or (key.startswith(keys.uploads_prefix(tenant_id)) and ".tail/" in key)
    )


def _metered(tenant: Tenant) -> tuple[dict[str, int], int, int]:
    """Object key → size of everything the database meters, and the metered bytes and rows."""
    expected: dict[str, int] = {}
    total = rows = 0
    for key, size in Blob.objects.filter(tenant=tenant).values_list("storage_key", "size").iterator():
        expected[key] = size
        total, rows = total + size, rows + 1
    manifests = Manifest.objects.filter(tenant=tenant).values_list("repository__name", "digest", "size")
    for repository, digest, size in manifests.iterator():
        expected[keys.manifest_key(tenant.pk, repository, digest)] = size
        total, rows = total + size, rows + 1
    return expected, total, rows


def storage_reconcile(*, tenant: Tenant, day: date | None = None) -> StorageDrift:
    """Compare the tenant's metered storage with its objects in the bucket and record `day`'s StorageDrift (default: today, UTC).

    Idempotent per (tenant, day): a re-run replaces that day's figures. Lists the tenant's prefix
    once (no object is read) and holds no lock.
    """
    expected, metered_bytes, metered_objects = _metered(tenant)
    unseen = dict(expected)
    actual = {"objects": 0, "bytes": 0, "unexpected_objects": 0, "unexpected_bytes": 0, "skipped_objects": 0, "skipped_bytes": 0}
    for obj in store_for(tenant).list(keys.tenant_prefix(tenant.pk)):
        if _skipped(obj.key, tenant.pk):
            actual["skipped_objects"] += 1
            actual["skipped_bytes"] += obj.size
            continue
        actual["objects"] += 1
        actual["bytes"] += obj.size
        if unseen.pop(obj.key, None) is None:
            actual["unexpected_objects"] += 1
            actual["unexpected_bytes"] += obj.size
    drift, _ = StorageDrift.objects.update_or_create(
        tenant=tenant,
        day=day or datetime.now(UTC).date(),
        defaults={
            "metered_bytes": metered_bytes,
            "actual_bytes": actual["bytes"],
            "difference_bytes": actual["bytes"] - metered_bytes,
            "metered_objects": metered_objects,
            "actual_objects": actual["objects"],
            "missing_objects": len(unseen),
            "missing_bytes": sum(unseen.values()),
            "unexpected_objects": actual["unexpected_objects"],
            "unexpected_bytes": actual["unexpected_bytes"],
            "skipped_objects": actual["skipped_objects"],
            "skipped_bytes": actual["skipped_bytes"],
        },
    )
    return drift


def storage_reconcile_by_id(*, tenant_id: int) -> StorageDrift | None:
    """`storage_reconcile` for today by tenant id; None (quietly) when the tenant is gone or being deleted."""
    tenant = Tenant.objects.filter(pk=tenant_id).exclude(status=Tenant.Status.DELETING).first()
    return storage_reconcile(tenant=tenant) if tenant is not None else None
