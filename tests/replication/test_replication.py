"""Replication to a second bucket on the session's SeaweedFS: hooks, copies, verification, lag, pruning, bad input.

Everything real: pushes go through /v2/, bytes through SeaweedFS (Storj guard on), rows in PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from gateway.core.errors import Conflict, ValidationError
from gateway.registry.models import Blob, Manifest, RepositoryBlob, Tag
from gateway.replication.models import ObjectAudit, ObjectReplica
from gateway.replication.selectors import replication_status_get
from gateway.replication.services import replica_replicate, replica_verify, replication_enqueue
from gateway.replication.stores import target_store
from gateway.replication.sweep import replication_sweep
from gateway.replication.targets import storage_target_create, tenant_replication_set
from gateway.storage import keys, reset_blob_stores
from tests.helpers import replicate_all, sha
from tests.replication.conftest import OCI, layer

pytestmark = pytest.mark.django_db


def test_each_new_blob_and_manifest_queues_one_hook_after_commit(
    reg, replicating, django_capture_on_commit_callbacks, event_stream
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reg.push_image("app", "1", [b"layer-one", b"layer-two"])
        event_stream()  # the registry's event stream hands the pushes to replication
    ours = [c for c in callbacks if "replication_enqueue" in getattr(c, "__qualname__", "")]
    assert len(ours) == 4  # config, two layers, the manifest
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reg.push_blob("other", b"layer-one")  # an existing blob is linked, not stored: nothing to replicate
        event_stream()
    assert not [c for c in callbacks if "replication_enqueue" in getattr(c, "__qualname__", "")]


def test_no_hook_without_replication(reg, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reg.push_image("app", "1", [b"layer"])
    assert not [c for c in callbacks if "replication_enqueue" in getattr(c, "__qualname__", "")]
    assert not ObjectReplica.objects.exists()
    with pytest.raises(ValueError, match="kind must be one of"):
        replication_enqueue(tenant_id=tenant.pk, kind="layer", digest=sha(b"x"))


def test_pushes_are_copied_byte_identical_and_verified(reg, replicating, replica_store, blob_store):
    layers = [b"layer-one", layer("big", 300_000)]
    digest, payload = reg.push_image("app", "1", layers)
    for data in [b'{"architecture":"amd64","os":"linux"}', *layers]:
        reg.push_blob("mirror", data)  # already stored: only linked
    assert reg.push_manifest("mirror", "1", payload, OCI).status_code == 201  # the same manifest in a second repository
    counts = replicate_all(replicating)
    assert counts["replicated"] == 4  # 3 blobs + 1 manifest digest (two keys)

    for blob in Blob.objects.filter(tenant=replicating):
        row = ObjectReplica.objects.get(tenant=replicating, kind="blob", digest=blob.digest)
        assert row.state == "replicated" and row.verified_at and row.replicated_at and not row.last_error
        assert b"".join(replica_store.open_read(blob.storage_key)) == b"".join(blob_store.open_read(blob.storage_key))
        index = json.loads(replica_store.read_small(keys.blob_index_key(replicating.pk, blob.digest)))
        assert index == {"digest": blob.digest, "size": blob.size, "key": blob.storage_key}
        assert row.replica_keys == [blob.storage_key, keys.blob_index_key(replicating.pk, blob.digest)]
    row = ObjectReplica.objects.get(tenant=replicating, kind="manifest", digest=digest)
    assert sorted(row.replica_keys) == sorted([keys.manifest_key(replicating.pk, r, digest) for r in ("app", "mirror")])
    for key in row.replica_keys:
        assert replica_store.read_small(key) == payload

    assert replica_verify(replica_id=row.pk, deep=True) == "verified"
    again = replicate_all(replicating)
    assert again.get("replicated", 0) == 0  # idempotent: nothing copied twice


def test_a_big_blob_is_copied_in_parts_of_the_store_part_size(reg, replicating, target):
    settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "part_size": 5 * 1024 * 1024}
    reset_blob_stores()
    try:
        replica_store = target_store(target)
        data = layer("multipart", 11 * 1024 * 1024 + 123)
        d = reg.push_blob("app", data)
        blob = Blob.objects.get(tenant=replicating, digest=d)
        replicate_all(replicating)
        row = ObjectReplica.objects.get(tenant=replicating, digest=d)
        assert row.state == "replicated" and row.multipart_id == ""
        assert replica_store.part_size == 5 * 1024 * 1024
        st = replica_store.stat(blob.storage_key)
        assert st.size == len(data) and st.etag.endswith("-3")  # three parts: 5 + 5 + 1 MiB
        assert b"".join(replica_store.open_read(blob.storage_key)) == data
    finally:
        settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "part_size": 64 * 1024 * 1024}
        reset_blob_stores()


def test_lag_figures_and_health(reg, replicating):
    reg.push_image("app", "1", [b"a", b"b"])
    Blob.objects.filter(tenant=replicating).update(created_at=timezone.now() - timedelta(hours=2))
    status = replication_status_get(tenant=replicating)
    assert status["enabled"] is True and status["target"] == "backup"
    assert status["objects"]["pending"] == 4 and status["objects"]["not_yet_queued"] == 4
    assert status["objects"]["replicated"] == 0
    assert status["lag_seconds"] >= 2 * 3600 - 5
    assert status["health"] == "lagging"  # older than GATEWAY_REPLICATION_LAG_ALERT_SECONDS (1 h)

    replicate_all(replicating)
    status = replication_status_get(tenant=replicating)
    assert status["objects"] == {"replicated": 4, "pending": 0, "failed": 0, "mismatch": 0, "not_yet_queued": 0}
    assert status["lag_seconds"] == 0 and status["health"] == "ok" and status["last_replicated_at"]
    assert status["replicated_bytes"] == sum(ObjectReplica.objects.filter(tenant=replicating).values_list("size", flat=True))

    ObjectReplica.objects.filter(tenant=replicating, kind="blob").order_by("pk").filter(
        pk=ObjectReplica.objects.filter(tenant=replicating, kind="blob").order_by("pk").values("pk")[:1]
    ).update(state="failed", pending_since=timezone.now() - timedelta(minutes=5), last_error="boom")
    status = replication_status_get(tenant=replicating)
    assert status["objects"]["failed"] == 1 and status["health"] == "failing"
    assert 290 <= status["lag_seconds"] <= 400

    tenant_replication_set(tenant=replicating, target=None)
    assert replication_status_get(tenant=replicating)["health"] == "disabled"


def test_an_existing_tenant_opting_in_is_backfilled(reg, tenant, target, replica_store):
    reg.push_image("app", "1", [b"before-opt-in"])
    assert replication_sweep(tenant_id=tenant.pk, sync=True).counts.get("backfilled", 0) == 0  # not opted in: nothing
    tenant_replication_set(tenant=tenant, target=target)
    counts = replicate_all(tenant)
    assert counts["backfilled"] == 3 and counts["replicated"] == 3  # 2 blobs + 1 manifest
    blob = Blob.objects.get(tenant=tenant, digest=sha(b"before-opt-in"))
    assert b"".join(replica_store.open_read(blob.storage_key)) == b"before-opt-in"


def test_a_corrupt_primary_is_not_copied_and_is_flagged_for_the_audit(reg, replicating, replica_store, blob_store):
    d = reg.push_blob("app", b"good bytes")
    blob = Blob.objects.get(tenant=replicating, digest=d)
    blob_store.put(blob.storage_key, b"evil bytes")  # same size, different content, behind the gateway's back
    replicate_all(replicating)
    row = ObjectReplica.objects.get(tenant=replicating, digest=d)
    assert row.state == "failed" and "source corrupt" in row.last_error and row.next_attempt_at > timezone.now()
    assert replica_store.stat(blob.storage_key) is None  # nothing written
    audit = ObjectAudit.objects.get(blob=blob)
    assert audit.flagged and audit.last_checked_at is None

    blob_store.delete([blob.storage_key])
    ObjectReplica.objects.filter(pk=row.pk).update(next_attempt_at=None)
    assert replica_replicate(replica_id=row.pk) == "source_missing"


def test_a_blob_removed_by_gc_is_pruned_from_the_replica(reg, replicating, replica_store):
    digest, _ = reg.push_image("app", "1", [b"doomed"])
    replicate_all(replicating)
    blob = Blob.objects.get(tenant=replicating, digest=sha(b"doomed"))
    row = ObjectReplica.objects.get(tenant=replicating, digest=blob.digest)
    assert replica_store.stat(blob.storage_key) is not None
    # What GC does in the database (the rows go; the primary's objects are not our concern here).
    Tag.objects.filter(tenant=replicating).delete()
    Manifest.objects.filter(tenant=replicating).delete()
    RepositoryBlob.objects.filter(blob=blob).delete()
    Blob.objects.filter(pk=blob.pk).delete()
    ObjectReplica.objects.filter(tenant=replicating).update(verified_at=timezone.now() - timedelta(days=2))
    counts = replicate_all(replicating)
    assert counts["verify_pruned"] == 2  # the layer and the manifest; the config blob is still there
    assert not ObjectReplica.objects.filter(pk=row.pk).exists()
    assert replica_store.stat(blob.storage_key) is None
    assert replica_store.stat(keys.blob_index_key(replicating.pk, blob.digest)) is None
    assert replica_store.stat(keys.manifest_key(replicating.pk, "app", digest)) is None


def test_a_damaged_replica_is_found_by_verification_and_copied_again(reg, replicating, replica_store):
    d = reg.push_blob("app", b"replicated once")
    replicate_all(replicating)
    blob = Blob.objects.get(tenant=replicating, digest=d)
    row = ObjectReplica.objects.get(tenant=replicating, digest=d)
    replica_store.put(blob.storage_key, b"replicated twice")  # different size
    assert replica_verify(replica_id=row.pk) == "mismatch"
    row.refresh_from_db()
    assert row.state == "mismatch" and "bytes, expected" in row.last_error
    assert replication_status_get(tenant=replicating)["health"] == "failing"
    replicate_all(replicating)
    row.refresh_from_db()
    assert row.state == "replicated"
    assert b"".join(replica_store.open_read(blob.storage_key)) == b"replicated once"

    replica_store.put(blob.storage_key, b"replicated ONCE")  # same size: only the deep check sees it
    assert replica_verify(replica_id=row.pk) == "verified"
    assert replica_verify(replica_id=row.pk, deep=True) == "mismatch"


def test_replicate_is_a_no_op_for_busy_done_and_unknown_rows(reg, replicating):
    d = reg.push_blob("app", b"x")
    replicate_all(replicating)
    row = ObjectReplica.objects.get(tenant=replicating, digest=d)
    assert replica_replicate(replica_id=row.pk) == "done"
    assert replica_replicate(replica_id=10**12) == "gone"
    ObjectReplica.objects.filter(pk=row.pk).update(state="pending", lease_until=timezone.now() + timedelta(minutes=5))
    assert replica_replicate(replica_id=row.pk) == "busy"


# -- targets: bad input and secrets at rest ------------------------------------------------------


def test_bad_targets_are_refused_with_clear_errors(db, replica_bucket):
    s3 = settings.GATEWAY_S3
    ok = {
        "endpoint_url": s3["endpoint_url"],
        "access_key": s3["access_key"],
        "secret_key": s3["secret_key"],
        "region": s3["region"],
    }
    with pytest.raises(ValidationError, match="must not be the primary bucket"):
        storage_target_create(name="same", bucket=s3["bucket"], **ok)
    with pytest.raises(ValidationError, match="not a valid bucket name"):
        storage_target_create(name="bad", bucket="Not_A_Bucket", **ok)
    with pytest.raises(ValidationError, match="http\\(s\\) URL"):
        storage_target_create(name="bad", bucket=replica_bucket, **{**ok, "endpoint_url": "ftp://x"})
    with pytest.raises(ValidationError, match="target name"):
        storage_target_create(name="Bad Name", bucket=replica_bucket, **ok)
    with pytest.raises(ValidationError, match="not usable"):
        storage_target_create(name="nobucket", bucket="wharf-does-not-exist-here", **ok)
    with pytest.raises(ValidationError, match="not usable"):
        storage_target_create(name="wrongkey", bucket=replica_bucket, **{**ok, "secret_key": "wrong-secret"})
    storage_target_create(name="made", bucket=replica_bucket, create_bucket=True, **ok)  # exists already: fine
    with pytest.raises(Conflict, match="exists already"):
        storage_target_create(name="made", bucket=replica_bucket, **ok)


def test_target_secret_is_encrypted_at_rest(target):
    from django.db import connection

    plain = settings.GATEWAY_S3["secret_key"]
    with connection.cursor() as c:
        c.execute("SELECT * FROM replication_storagetarget WHERE id = %s", [target.pk])
        row = c.fetchone()
    assert not any(plain in str(col) for col in row)
    assert target.secret_key_encrypted.startswith("gAAAA")  # a Fernet token
    from gateway.core.crypto import secret_decrypt

    assert secret_decrypt(target.secret_key_encrypted) == plain


def test_a_disabled_target_stops_copies(reg, replicating, target):
    d = reg.push_blob("app", b"held back")
    target.enabled = False
    target.save()
    counts = replicate_all(replicating)
    assert counts.get("replicated", 0) == 0 and counts.get("backfilled", 0) == 0
    with pytest.raises(ValidationError, match="disabled"):
        tenant_replication_set(tenant=replicating, target=target)
    target.enabled = True
    target.save()
    assert replicate_all(replicating)["replicated"] == 1
    assert ObjectReplica.objects.get(digest=d).state == "replicated"
