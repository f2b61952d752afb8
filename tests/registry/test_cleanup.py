"""Stale upload sessions and orphaned multipart uploads: aborted, and the abort visible in S3 (SeaweedFS, Storj guard on)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.registry.models import Blob, BlobUpload, DeletedObject, JobRun, ObjectDeletion
from gateway.registry.services.cleanup import uploads_cleanup, uploads_cleanup_to_completion
from gateway.storage import keys
from tests.helpers import command, sha

MiB = 1024 * 1024


def start(reg, repo: str = "app") -> str:
    r = reg.post(f"/v2/acme/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.content
    return r["Location"]


def pending(store, tenant) -> dict[str, str]:
    """Multipart uploads in the bucket under the tenant's uploads/ prefix: upload id → key."""
    return {u.upload_id: u.key for u in store.list_multipart(keys.uploads_prefix(tenant.pk))}


def idle(upload_id, *, hours: float) -> None:
    BlobUpload.objects.filter(pk=upload_id).update(last_activity_at=timezone.now() - timedelta(hours=hours))


@pytest.fixture
def stale(reg, tenant, blob_store):
    """An upload session with a part in S3 (a pending multipart upload) and a tail in the database, idle for two days."""
    loc = start(reg)
    part, tail = os.urandom(6 * MiB), b"tail bytes"
    r = reg.patch(loc, part, HTTP_CONTENT_RANGE=f"0-{len(part) - 1}")
    assert r.status_code == 202, r.content
    r = reg.patch(loc, tail, HTTP_CONTENT_RANGE=f"{len(part)}-{len(part) + len(tail) - 1}")
    assert r.status_code == 202, r.content
    data = part + tail
    upload = BlobUpload.objects.get(tenant=tenant)
    assert upload.multipart_id and upload.multipart_id in pending(blob_store, tenant)
    assert bytes(upload.tail)
    idle(upload.pk, hours=48)
    return loc, upload, data


@pytest.mark.django_db
def test_a_stale_session_is_aborted_and_its_multipart_upload_is_gone_from_s3(reg, tenant, blob_store, stale):
    loc, upload, data = stale
    report = uploads_cleanup_to_completion(tenant=tenant)
    assert report.done and report.counts["sessions_aborted"] == 1 and report.counts["multipart_aborted"] == 1
    assert upload.multipart_id not in pending(blob_store, tenant)  # AbortMultipartUpload, seen in S3
    upload.refresh_from_db()
    assert upload.state == BlobUpload.State.CANCELLED and bytes(upload.tail) == b""
    # The client coming back finds the session gone, and cannot finish it into a blob.
    r = reg.patch(loc, b"more", HTTP_CONTENT_RANGE=f"{len(data)}-{len(data) + 3}")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    r = reg.put(f"{loc}?digest={sha(data)}")
    assert r.status_code == 404 and not Blob.objects.exists()
    job = JobRun.objects.get(pk=report.job_id)
    assert job.kind == "uploads_cleanup" and job.state == "succeeded" and job.counts["sessions_aborted"] == 1
    assert not ObjectDeletion.objects.exists()
    # Idempotent.
    assert uploads_cleanup_to_completion(tenant=tenant).counts.get("sessions_aborted", 0) == 0


@pytest.mark.django_db
def test_active_and_leased_sessions_are_left_alone(reg, tenant, blob_store, stale):
    _, upload, _ = stale
    recent = start(reg)
    # A request is streaming into the stale one right now (its lease is live): not touched.
    BlobUpload.objects.filter(pk=upload.pk).update(leased_until=timezone.now() + timedelta(minutes=5))
    report = uploads_cleanup_to_completion(tenant=tenant)
    assert report.counts.get("sessions_aborted", 0) == 0 and report.counts.get("orphans_aborted", 0) == 0
    assert BlobUpload.objects.filter(state=BlobUpload.State.ACTIVE).count() == 2
    assert upload.multipart_id in pending(blob_store, tenant)
    assert reg.get(recent).status_code == 204


@pytest.mark.django_db
def test_dry_run_lists_and_changes_nothing(reg, tenant, blob_store, stale):
    _, upload, _ = stale
    report = uploads_cleanup_to_completion(tenant=tenant, dry_run=True)
    assert report.dry_run and [s["upload"] for s in report.sessions] == [str(upload.pk)]
    assert report.sessions[0]["multipart"] is True and report.sessions[0]["tail_bytes"] == len(b"tail bytes")
    upload.refresh_from_db()
    assert upload.state == BlobUpload.State.ACTIVE and upload.multipart_id in pending(blob_store, tenant)


@pytest.mark.django_db
def test_orphaned_multipart_uploads_with_no_session_are_listed_and_aborted(reg, tenant, blob_store, stale):
    _, upload, _ = stale
    BlobUpload.objects.filter(pk=upload.pk).update(leased_until=timezone.now() + timedelta(minutes=5))  # owned and busy
    # A multipart upload whose session row is gone (a crash between S3 and the database).
    orphan_key = keys.upload_key(tenant.pk, uuid.uuid4())
    orphan_id = blob_store.multipart_start(orphan_key)
    blob_store.multipart_put_part(orphan_key, orphan_id, 1, os.urandom(1024))
    assert orphan_id in pending(blob_store, tenant)
    # Younger than the timeout: its session may just not have recorded it yet.
    assert uploads_cleanup_to_completion(tenant=tenant).counts.get("orphans_aborted", 0) == 0
    dry = uploads_cleanup_to_completion(tenant=tenant, dry_run=True, idle_timeout=timedelta(0))
    assert [o["upload_id"] for o in dry.orphans] == [orphan_id] and orphan_id in pending(blob_store, tenant)
    report = uploads_cleanup_to_completion(tenant=tenant, idle_timeout=timedelta(0))
    assert report.counts["orphans_aborted"] == 1 and report.orphans[0]["key"] == orphan_key
    still = pending(blob_store, tenant)
    assert orphan_id not in still and upload.multipart_id in still  # the owned one stays


@pytest.mark.django_db
def test_old_finished_sessions_go_and_leftover_bytes_with_them_but_blob_bytes_stay(reg, tenant, blob_store):
    data = b"a committed blob"
    loc = start(reg)
    assert reg.put(f"{loc}?digest={sha(data)}", data).status_code == 201
    done = BlobUpload.objects.get(state=BlobUpload.State.DONE)
    blob = Blob.objects.get(digest=sha(data))
    assert blob.storage_key == done.storage_key
    # A cancelled session whose key holds bytes (a worker died after CompleteMultipartUpload, before the blob row).
    loc2 = start(reg)
    assert reg.delete(loc2).status_code == 204
    cancelled = BlobUpload.objects.get(state=BlobUpload.State.CANCELLED)
    blob_store.put(cancelled.storage_key, b"leftover bytes")
    BlobUpload.objects.update(updated_at=timezone.now() - timedelta(days=3))
    report = uploads_cleanup_to_completion(tenant=tenant)
    assert report.counts["sessions_deleted"] == 2 and not BlobUpload.objects.exists()
    assert blob_store.stat(cancelled.storage_key) is None
    assert blob_store.stat(blob.storage_key).size == len(data)  # still a blob's bytes: kept
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(data)}").streaming_content) == data


@pytest.mark.django_db
def test_bad_arguments_are_clear_errors(tenant):
    with pytest.raises(ValueError, match="idle_timeout must not be negative"):
        uploads_cleanup(tenant=tenant, idle_timeout=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="batch_size must be between 1 and 1000"):
        uploads_cleanup(tenant=tenant, batch_size=0)


@pytest.mark.django_db(transaction=True)
def test_uploads_cleanup_command_prints_json(reg, tenant, blob_store, stale):
    _, upload, _ = stale
    r = command("uploads_cleanup", "--tenant", "acme", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenants"][0]["sessions"][0]["upload"] == str(upload.pk)
    r = command("uploads_cleanup", "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenants"][0]["counts"]["multipart_aborted"] == 1
    assert upload.multipart_id not in pending(blob_store, tenant)
    r = command("uploads_cleanup", "--idle-seconds", "-5")
    assert r.returncode != 0 and "at least 0" in r.stderr


@pytest.mark.django_db
def test_a_stale_session_loses_its_tail_objects_including_one_a_dead_request_left(reg, tenant, blob_store, settings):
    settings.GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES = 1024
    loc = start(reg)
    tail = os.urandom(100_000)
    assert reg.patch(loc, tail, HTTP_CONTENT_RANGE=f"0-{len(tail) - 1}").status_code == 202
    upload = BlobUpload.objects.get()
    assert upload.tail_key and blob_store.stat(upload.tail_key).size == len(tail)
    # A request that died after writing its tail object but before its row update left this one.
    dead = keys.upload_tail_key(tenant.pk, upload.pk, len(tail) + 5000)
    blob_store.put(dead, os.urandom(len(tail) + 5000))
    # Unrelated: another session's key that merely shares the prefix's first characters stays.
    other = start(reg)
    idle(upload.pk, hours=48)
    report = uploads_cleanup_to_completion(tenant=tenant)
    assert report.done and report.counts["sessions_aborted"] == 1 and report.counts["tail_objects_recorded"] == 2
    assert blob_store.stat(upload.tail_key) is None and blob_store.stat(dead) is None
    assert not ObjectDeletion.objects.exists()
    assert list(blob_store.list(keys.upload_tail_prefix(tenant.pk, upload.pk))) == []
    assert reg.get(other).status_code == 204


@pytest.mark.django_db
def test_a_finished_session_loses_tail_objects_left_behind(reg, tenant, blob_store, settings):
    settings.GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES = 1024
    loc = start(reg)
    data = os.urandom(50_000)
    assert reg.patch(loc, data).status_code == 202
    assert reg.put(f"{loc}?digest={sha(data)}").status_code == 201
    done = BlobUpload.objects.get(state=BlobUpload.State.DONE)
    assert done.tail_spilled
    blob = Blob.objects.get()
    # A tail object the finishing request could not delete (storage hiccup, killed worker).
    left = keys.upload_tail_key(tenant.pk, done.pk, len(data))
    blob_store.put(left, data)
    BlobUpload.objects.update(updated_at=timezone.now() - timedelta(days=3))
    stored = next(o for o in blob_store.list(keys.upload_tail_prefix(tenant.pk, done.pk)) if o.key == left)
    report = uploads_cleanup_to_completion(tenant=tenant)
    assert report.counts["sessions_deleted"] == 1 and report.counts["tail_objects_recorded"] == 1
    assert blob_store.stat(left) is None and not BlobUpload.objects.exists()
    assert blob_store.stat(blob.storage_key).size == len(data)  # the blob's bytes stay
    # Storj billed the tail: ledgered with the size and time its listing gave; the session's key (the blob's) is not.
    assert list(DeletedObject.objects.values_list("kind", "key", "size", "stored_since")) == [
        ("data", left, len(data), stored.last_modified)
    ]
