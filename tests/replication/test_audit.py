"""The integrity audit against real SeaweedFS and PostgreSQL: detection, repair from the replica, reporting, cadence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from gateway.registry.models import Blob, JobRun, Manifest
from gateway.replication import locks
from gateway.replication.integrity import integrity_audit, integrity_seed
from gateway.replication.models import ObjectAudit
from gateway.replication.selectors import integrity_status_get
from gateway.replication.sweep import replication_sweep
from gateway.storage import keys
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.services import webhook_endpoint_create
from gateway.webhooks.tasks import webhook_deliver_task
from tests.helpers import sha
from tests.replication.conftest import OCI, layer

pytestmark = pytest.mark.django_db


def _full(tenant=None, **kw):
    return integrity_audit(tenant_id=tenant.pk if tenant else None, full=True, max_batches=None, **kw)


def _pull_blob(reg, repo: str, digest: str) -> bytes:
    r = reg.get(f"/v2/acme/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.status_code
    return b"".join(r.streaming_content)


def test_a_clean_audit_checks_every_object_and_records_the_run(reg, tenant):
    digest, _ = reg.push_image("app", "1", [b"layer-a", b"layer-b"])
    result = _full(tenant, sample_rate=1.0)
    c = result.run.counts
    assert result.run.kind == "audit" and result.run.state == "succeeded" and result.run.tenant_id == tenant.pk
    assert result.run.finished_at and result.run.started_at <= result.run.finished_at
    assert (c["checked"], c["checked_blob"], c["checked_manifest"], c["ok"], c["headed"], c["deep_checked"]) == (4, 3, 1, 4, 4, 4)
    assert result.findings == [] and result.as_dict()["findings"] == []
    rows = ObjectAudit.objects.filter(tenant=tenant)
    assert rows.count() == 4 and all(r.status == "ok" and r.etag and r.last_deep_checked_at for r in rows)
    manifest_row = rows.get(kind="manifest")
    assert manifest_row.key == keys.manifest_key(tenant.pk, "app", digest)
    assert integrity_status_get(tenant=tenant)["by_status"] == {"ok": 4}


def test_tampering_is_detected_reported_and_repaired_from_the_replica(reg, replicating, hook_server, blob_store, replica_store):
    created = webhook_endpoint_create(tenant=replicating, url=hook_server.url, events=["integrity.problem"])
    gone, longer, same_size = b"layer to delete", b"layer to overwrite", b"layer to corrupt"
    digest, payload = reg.push_image("app", "1", [gone, longer, same_size])
    replication_sweep(tenant_id=replicating.pk, sync=True, force=True)
    assert _full(replicating, sample_rate=0).run.counts["ok"] == 5  # the ETag baselines

    blob = {d: Blob.objects.get(tenant=replicating, digest=sha(d)) for d in (gone, longer, same_size)}
    manifest_key = keys.manifest_key(replicating.pk, "app", digest)
    # Behind the gateway's back: one deleted, one rewritten longer, one rewritten with the same size, the manifest deleted.
    blob_store.delete([blob[gone].storage_key, manifest_key])
    blob_store.put(blob[longer].storage_key, b"something else, and longer")
    blob_store.put(blob[same_size].storage_key, b"LAYER TO CORRUPT")

    result = _full(replicating, sample_rate=0)  # no sampling: the changed ETag alone triggers the re-hash
    c = result.run.counts
    assert (c["missing"], c["size_mismatch"], c["corrupt"], c["repaired"], c["reported"]) == (2, 1, 1, 4, 4)
    assert c["etag_changed"] == 1 and c["deep_checked"] == 1
    by_digest = {(f["kind"], f["digest"]): f for f in result.as_dict()["findings"]}
    assert by_digest[("blob", sha(gone))]["status"] == "missing"
    assert by_digest[("blob", sha(longer))]["status"] == "size_mismatch"
    assert by_digest[("blob", sha(longer))]["actual_size"] == len(b"something else, and longer")
    assert by_digest[("blob", sha(same_size))]["status"] == "corrupt"
    assert by_digest[("blob", sha(same_size))]["actual_digest"] == sha(b"LAYER TO CORRUPT")
    assert by_digest[("manifest", digest)]["status"] == "missing"
    assert by_digest[("manifest", digest)]["repair_source"] == "database"
    assert {f["repair_source"] for k, f in by_digest.items() if k[0] == "blob"} == {"replica:backup"}

    # Repaired byte-identical, at the same keys; pulls through the registry return the right bytes.
    for data, b in blob.items():
        assert b"".join(blob_store.open_read(b.storage_key)) == data
        assert ObjectAudit.objects.get(blob=b).status == "repaired"
        assert _pull_blob(reg, "app", b.digest) == data
    assert blob_store.read_small(manifest_key) == payload
    r = reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    assert r.status_code == 200 and r.content == payload

    # Reported to the tenant's admins: the audit log ...
    problems = AuditEvent.objects.filter(tenant=replicating, action="integrity.problem").order_by("pk")
    assert problems.count() == 4 and not any(e.success for e in problems) and all(e.actor == "system" for e in problems)
    assert {e.detail["status"] for e in problems} == {"missing", "size_mismatch", "corrupt"}
    assert all(e.detail["repaired"] is True for e in problems)
    assert AuditEvent.objects.filter(tenant=replicating, action="integrity.repair", success=True).count() == 4
    # ... and a signed webhook per finding, delivered by the delivery task.
    deliveries = list(WebhookDelivery.objects.filter(tenant=replicating, event="integrity.problem").order_by("pk"))
    assert len(deliveries) == 4
    for d in deliveries:
        assert webhook_deliver_task(delivery_id=d.pk) == "delivered"
    assert len(hook_server.requests) == 4
    for received in hook_server.requests:
        assert hook_server.signature_ok(received, created.secret)
        assert received.headers["X-Wharf-Event"] == "integrity.problem"
        body = received.json
        assert body["tenant"] == "acme" and body["event"] == "integrity.problem"
        assert body["data"]["repaired"] is True and body["data"]["status"] in {"missing", "size_mismatch", "corrupt"}
    assert {r.json["data"]["digest"] for r in hook_server.requests} == {sha(gone), sha(longer), sha(same_size), digest}

    # The next audit finds everything sound and reports nothing new.
    again = _full(replicating, sample_rate=1.0)
    assert again.run.counts["ok"] == 5 and again.run.counts.get("reported", 0) == 0
    assert AuditEvent.objects.filter(tenant=replicating, action="integrity.problem").count() == 4


def test_without_a_replica_a_lost_blob_stays_flagged_and_is_reported_once(reg, tenant, blob_store):
    d = reg.push_blob("app", b"only copy")
    blob = Blob.objects.get(tenant=tenant, digest=d)
    blob_store.delete([blob.storage_key])
    first = _full(tenant)
    assert first.run.counts["missing"] == 1 and first.run.counts["unrepaired"] == 1 and first.run.counts["reported"] == 1
    row = ObjectAudit.objects.get(blob=blob)
    assert row.status == "missing" and row.flagged and row.detail["repair_error"] == "no verified replica"
    second = _full(tenant)
    assert second.run.counts["missing"] == 1 and second.run.counts.get("reported", 0) == 0
    assert AuditEvent.objects.filter(tenant=tenant, action="integrity.problem").count() == 1
    assert integrity_status_get(tenant=tenant)["flagged"] == 1


def test_sampling_decides_whether_a_same_size_rewrite_is_seen_on_first_sight(reg, tenant, blob_store):
    d = reg.push_blob("app", b"original")
    blob = Blob.objects.get(tenant=tenant, digest=d)
    blob_store.put(blob.storage_key, b"ORIGINAL")  # before any audit: no ETag baseline to compare with
    assert _full(tenant, sample_rate=0).run.counts["ok"] == 1  # HEAD alone cannot tell
    ObjectAudit.objects.filter(blob=blob).update(etag="")  # forget the baseline again
    result = _full(tenant, sample_rate=1.0)
    assert result.run.counts["corrupt"] == 1 and result.run.counts["deep_bytes"] == 8


def test_the_deep_check_respects_the_egress_budget_except_for_flagged_objects(reg, tenant, settings):
    settings.GATEWAY_AUDIT_DEEP_BYTES_PER_RUN = 100
    reg.push_blob("app", layer("small", 60))
    big = reg.push_blob("app", layer("big", 200))
    result = _full(tenant, sample_rate=1.0)
    assert result.run.counts["deep_checked"] == 1 and result.run.counts["deep_skipped_budget"] == 1
    ObjectAudit.objects.filter(digest=big).update(flagged=True)
    result = _full(tenant, sample_rate=0)
    assert result.run.counts["deep_checked"] == 1 and result.run.counts["deep_bytes"] == 200


def test_periodic_runs_take_due_objects_in_bounded_batches_least_recently_checked_first(reg, tenant):
    reg.push_image("app", "1", [b"a", b"b", b"c"])  # 4 blobs + 1 manifest
    first = integrity_audit(tenant_id=tenant.pk, batch_size=2, max_batches=1)
    assert first.run.counts["checked"] == 2 and first.more and first.run.state == "running"
    cont = integrity_audit(tenant_id=tenant.pk, batch_size=2, max_batches=1, run_id=first.run.pk)
    assert cont.run.pk == first.run.pk and cont.run.counts["checked"] == 4
    last = integrity_audit(tenant_id=tenant.pk, batch_size=2, max_batches=None, run_id=first.run.pk)
    assert last.run.counts["checked"] == 5 and not last.more and last.run.state == "succeeded"
    # Nothing is due again for GATEWAY_AUDIT_INTERVAL_HOURS ...
    assert integrity_audit(tenant_id=tenant.pk).run.counts.get("checked", 0) == 0
    # ... except what was last checked longer ago than that, oldest first.
    old = ObjectAudit.objects.filter(tenant=tenant).order_by("pk")[:2]
    ObjectAudit.objects.filter(pk=old[0].pk).update(last_checked_at=timezone.now() - timedelta(hours=30))
    ObjectAudit.objects.filter(pk=old[1].pk).update(last_checked_at=timezone.now() - timedelta(hours=25))
    run = integrity_audit(tenant_id=tenant.pk, batch_size=1, max_batches=1)
    assert run.run.counts["checked"] == 1
    assert ObjectAudit.objects.get(pk=old[0].pk).last_checked_at > timezone.now() - timedelta(minutes=1)
    assert ObjectAudit.objects.get(pk=old[1].pk).last_checked_at < timezone.now() - timedelta(hours=24)


def test_concurrent_claims_never_share_objects_and_a_killed_runs_leases_expire(reg, tenant):
    reg.push_image("app", "1", [b"a", b"b", b"c"])
    integrity_seed(tenant_id=tenant.pk)
    now = timezone.now()
    a = locks.audits_claim(tenant_id=tenant.pk, due_before=now, limit=3)
    b = locks.audits_claim(tenant_id=tenant.pk, due_before=now, limit=3)
    assert len(a) == 3 and len(b) == 2 and not set(a) & set(b)
    assert locks.audits_claim(tenant_id=tenant.pk, due_before=now, limit=3) == []
    # The worker holding `a` died: once its lease runs out, the objects are claimed again.
    ObjectAudit.objects.filter(pk__in=a).update(lease_until=now - timedelta(seconds=1))
    assert sorted(locks.audits_claim(tenant_id=tenant.pk, due_before=now, limit=5)) == sorted(a)


def test_a_killed_run_is_superseded_and_its_work_redone(reg, tenant):
    reg.push_blob("app", b"x")
    dead = JobRun.objects.create(kind="audit", tenant=tenant)
    JobRun.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    result = _full(tenant)
    dead.refresh_from_db()
    assert dead.state == "failed" and "abandoned" in dead.errors[-1]["error"] and dead.finished_at
    assert result.run.state == "succeeded" and result.run.counts["checked"] == 1


def test_rows_of_objects_gc_removed_are_dropped(reg, tenant):
    d = reg.push_blob("app", b"soon gone")
    integrity_seed(tenant_id=tenant.pk)
    blob = Blob.objects.get(tenant=tenant, digest=d)
    from gateway.registry.models import RepositoryBlob

    RepositoryBlob.objects.filter(blob=blob).delete()
    Blob.objects.filter(pk=blob.pk).delete()  # Django cascades to the audit row
    assert not ObjectAudit.objects.filter(digest=d).exists()
    # A raw delete (no cascade, no constraint to stop it) leaves a dangling row: the audit drops it.
    d2 = reg.push_blob("app", b"raw gone")
    integrity_seed(tenant_id=tenant.pk)
    blob2 = Blob.objects.get(tenant=tenant, digest=d2)
    RepositoryBlob.objects.filter(blob=blob2).delete()
    Blob.objects.filter(pk=blob2.pk)._raw_delete(Blob.objects.db)
    assert _full(tenant).run.counts["dropped"] == 1
    assert not ObjectAudit.objects.filter(digest=d2).exists()


def test_bad_arguments_are_refused(db):
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="sample_rate"):
            integrity_audit(sample_rate=bad)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            integrity_audit(batch_size=bad)
    with pytest.raises(ValueError, match="max_batches"):
        integrity_audit(max_batches=0)
    assert not JobRun.objects.exists()  # refused before anything was recorded


def test_manifests_in_two_repositories_are_two_objects(reg, tenant, blob_store):
    digest, payload = reg.push_image("app", "1", [b"shared"])
    for data in [b'{"architecture":"amd64","os":"linux"}', b"shared"]:
        reg.push_blob("copy", data)
    assert reg.push_manifest("copy", "1", payload, OCI).status_code == 201
    blob_store.delete([keys.manifest_key(tenant.pk, "copy", digest)])
    result = _full(tenant)
    assert result.run.counts["checked_manifest"] == 2 and result.run.counts["missing"] == 1 and result.run.counts["repaired"] == 1
    assert blob_store.read_small(keys.manifest_key(tenant.pk, "copy", digest)) == payload
    assert Manifest.objects.filter(tenant=tenant, digest=digest).count() == 2
