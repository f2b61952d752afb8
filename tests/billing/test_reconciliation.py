"""Daily storage reconciliation against a real SeaweedFS: metered bytes and objects beside what the bucket holds."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from accounts.models import Tenant
from billing.models import StorageDrift
from billing.reconciliation import storage_reconcile
from billing.tasks import storage_reconcile_all_task, storage_reconcile_task
from billing.usage_selectors import storage_drift_list
from gateway.registry.models import Blob, Manifest
from gateway.registry.usage_selectors import usage_storage_get
from gateway.storage import keys
from tests.factories import make_tenant
from tests.helpers import sha

SHARED, APP_ONLY = b"a layer two repositories share " * 40, b"only app has this layer " * 30


def _bookkeeping(blob_store, tenant) -> tuple[int, int]:
    """Objects and bytes of the index and tag objects the registry wrote (what reconciliation skips)."""
    found = [o for o in blob_store.list(keys.tenant_prefix(tenant.pk)) if "/index/blobs/" in o.key or "/_tags/" in o.key]
    return len(found), sum(o.size for o in found)


@pytest.mark.django_db
def test_a_consistent_bucket_has_no_drift_and_bookkeeping_objects_are_skipped(reg, tenant, blob_store):
    _, payload = reg.push_image("app", "1", [SHARED, APP_ONLY])
    reg.push_image("web", "1", [SHARED])
    reg.push_blob("web", APP_ONLY)  # linked, not stored again
    assert reg.push_manifest("web", "copy", payload).status_code == 201  # the app manifest again: web's own object
    drift = storage_reconcile(tenant=tenant)
    stored = usage_storage_get(tenant=tenant)["stored_bytes"]
    rows = Blob.objects.filter(tenant=tenant).count() + Manifest.objects.filter(tenant=tenant).count()
    skipped, skipped_bytes = _bookkeeping(blob_store, tenant)
    assert skipped == Blob.objects.filter(tenant=tenant).count() + 3  # an index object per blob, one per tag
    assert (drift.day, drift.metered_bytes, drift.actual_bytes, drift.difference_bytes) == (
        datetime.now(UTC).date(),
        stored,
        stored,
        0,
    )
    assert (drift.metered_objects, drift.actual_objects, drift.missing_objects, drift.unexpected_objects) == (rows, rows, 0, 0)
    assert (drift.skipped_objects, drift.skipped_bytes) == (skipped, skipped_bytes)


@pytest.mark.django_db
def test_drift_made_on_purpose_is_found_and_a_rerun_replaces_the_day(reg, tenant, blob_store):
    reg.push_image("app", "1", [SHARED, APP_ONLY])
    day = date(2026, 5, 4)
    assert storage_reconcile(tenant=tenant, day=day).difference_bytes == 0
    # Behind the registry's back: one object written under the tenant's prefix, one blob's object deleted.
    rogue = b"written straight to the bucket " * 7
    blob_store.put(keys.upload_key(tenant.pk, uuid.uuid4()), rogue)
    gone = Blob.objects.get(tenant=tenant, digest=sha(APP_ONLY))
    blob_store.delete([gone.storage_key])
    # An upload in progress carries a tail: skipped, not drift. Another tenant's objects are not ours.
    tail = keys.upload_tail_key(tenant.pk, uuid.uuid4(), 5 * 1024 * 1024)
    blob_store.put(tail, b"tail bytes")
    globex = make_tenant("globex")
    blob_store.put(keys.upload_key(globex.pk, uuid.uuid4()), b"not acme's")
    before = storage_reconcile(tenant=tenant, day=day - timedelta(days=1))

    drift = storage_reconcile(tenant=tenant, day=day)
    assert StorageDrift.objects.filter(tenant=tenant, day=day).count() == 1
    assert drift.metered_bytes == usage_storage_get(tenant=tenant)["stored_bytes"]
    assert drift.actual_bytes == drift.metered_bytes - len(APP_ONLY) + len(rogue)
    assert drift.difference_bytes == len(rogue) - len(APP_ONLY)
    assert (drift.missing_objects, drift.missing_bytes) == (1, len(APP_ONLY))
    assert (drift.unexpected_objects, drift.unexpected_bytes) == (1, len(rogue))
    assert drift.actual_objects == drift.metered_objects  # one gone, one extra
    assert drift.skipped_objects == before.skipped_objects and drift.skipped_bytes >= len(b"tail bytes")
    assert storage_reconcile(tenant=globex).unexpected_objects == 1

    # What staff read: the drifted days first, largest first; one tenant or all; a bad range refused.
    clean = storage_reconcile(tenant=globex, day=day - timedelta(days=3))
    StorageDrift.objects.filter(pk=clean.pk).update(
        difference_bytes=0, unexpected_objects=0, unexpected_bytes=0, actual_bytes=0, actual_objects=0
    )
    listed = list(storage_drift_list(since=day - timedelta(days=3), until=day))
    assert listed[0].tenant == tenant and listed[0].day == day
    assert [d.pk for d in storage_drift_list(since=day, until=day, tenant=globex)] == []
    assert clean.pk not in [d.pk for d in storage_drift_list(since=day - timedelta(days=3), until=day, drifted_only=True)]
    assert clean.pk in [d.pk for d in storage_drift_list(since=day - timedelta(days=3), until=day)]
    with pytest.raises(ValueError, match="until"):
        storage_drift_list(since=day, until=day - timedelta(days=1))


@pytest.mark.django_db
def test_the_reconcile_tasks_record_today_for_every_live_tenant(reg, tenant, monkeypatch):
    reg.push_image("app", "1", [APP_ONLY])
    other = make_tenant("globex")  # nothing pushed: an empty prefix reconciles to zeros
    gone = make_tenant("initech")
    Tenant.objects.filter(pk=gone.pk).update(status=Tenant.Status.DELETING)
    sent: list[dict] = []
    monkeypatch.setattr(storage_reconcile_task, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    assert storage_reconcile_all_task() == 2
    assert sorted(k["tenant_id"] for k in sent) == sorted([tenant.pk, other.pk])
    for kwargs in sent:
        assert storage_reconcile_task(**kwargs) == 0
    today = datetime.now(UTC).date()
    empty = StorageDrift.objects.get(tenant=other, day=today)
    assert (empty.metered_bytes, empty.actual_bytes, empty.actual_objects, empty.skipped_objects) == (0, 0, 0, 0)
    assert StorageDrift.objects.get(tenant=tenant, day=today).metered_bytes > 0
    assert storage_reconcile_task(tenant_id=gone.pk) is None
    assert storage_reconcile_task(tenant_id=10**9) is None
    assert not StorageDrift.objects.filter(tenant=gone).exists()


@pytest.mark.django_db
def test_an_unreachable_bucket_raises_and_keeps_the_days_row(reg, tenant, monkeypatch):
    import botocore.config

    from billing import reconciliation
    from gateway.storage import StorageUnavailable
    from gateway.storage.s3 import S3BlobStore, S3Config

    reg.push_image("app", "1", [APP_ONLY])
    kept = storage_reconcile(tenant=tenant)
    dead = S3BlobStore(S3Config(endpoint_url="http://127.0.0.1:1", access_key="a", secret_key="b", bucket="x"))
    dead._boto_config = dead._boto_config.merge(botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1))
    monkeypatch.setattr(reconciliation, "store_for", lambda tenant: dead)
    reg.push_image("app", "2", [SHARED])  # the figures would change, if the bucket answered
    with pytest.raises(StorageUnavailable):
        storage_reconcile(tenant=tenant)
    row = StorageDrift.objects.get(tenant=tenant, day=kept.day)
    assert (row.metered_bytes, row.actual_bytes, row.updated_at) == (kept.metered_bytes, kept.actual_bytes, kept.updated_at)
