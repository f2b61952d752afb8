"""Real processes: a `celery worker` replicating what pushes commit and running the audit; a copy killed with SIGKILL.

transaction=True: rows are committed, so the worker and `manage.py` children see them, and the
commit hooks really fire (through the real Redis broker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.registry.models import Blob, JobRun
from gateway.replication.models import ObjectAudit, ObjectReplica
from gateway.replication.selectors import replication_status_get
from gateway.replication.sweep import replication_sweep
from gateway.replication.tasks import integrity_audit_task
from gateway.storage import keys
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.services import webhook_endpoint_create, webhook_event_emit
from gateway.webhooks.tasks import webhook_sweep_task
from tests.helpers import ROOT, celery_worker, sha, subprocess_env
from tests.replication.conftest import OCI, layer


def _wait(condition: Callable[[], bool], timeout: float, what: str, log_path: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tail = ""
    if log_path:
        with open(log_path, errors="replace") as f:
            tail = "\nworker log:\n" + f.read()[-6000:]
    raise AssertionError(f"timed out waiting for {what}{tail}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_replicates_pushes_and_repairs_what_the_audit_finds(
    reg, tenant, target, replica_store, blob_store, hook_server, monkeypatch, event_stream
):
    from gateway.replication.targets import tenant_replication_set
    from gateway.replication.tasks import replicate_object_task, replication_sweep_task

    old_digest, _ = reg.push_image("old", "1", [b"pushed before the opt-in"])  # no hooks: left to the sweep's backfill
    event_stream()  # delivered while the tenant does not replicate
    replicating = tenant_replication_set(tenant=tenant, target=target).tenant
    created = webhook_endpoint_create(tenant=replicating, url=hook_server.url, events=["integrity.problem"])
    # This worker's own queue instead of "audit" (test sessions on one machine share the broker); follow-up
    # work (re-queued batches, copies the sweep queues) stays on the queue its message came from.
    queue = f"audit-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setattr(replicate_object_task, "wharf_queue", queue)  # where this process's commit hooks send
    log = tempfile.NamedTemporaryFile(prefix="wharf-worker-", suffix=".log", delete=False)  # noqa: SIM115  (the worker writes it)
    worker = celery_worker(f"{queue},celery", log)
    try:
        digest, payload = reg.push_image("app", "1", [b"layer-one", layer("two", 200_000)])
        event_stream()  # what beat's usage-flush does every minute: the stream queues the copies on commit
        # The config blob is the old image's (linked, not stored again): two layers and the manifest are new.
        _wait(
            lambda: ObjectReplica.objects.filter(tenant=replicating, state="replicated").count() == 3,
            40,
            "3 replicated objects",
            log.name,
        )
        assert replication_status_get(tenant=replicating)["objects"]["not_yet_queued"] == 3  # the old image
        replication_sweep_task.apply_async(kwargs={"tenant_id": replicating.pk}, queue=queue)  # what beat sends every 5 minutes
        _wait(
            lambda: ObjectReplica.objects.filter(tenant=replicating, state="replicated").count() == 6,
            40,
            "the backfill",
            log.name,
        )
        sweep = JobRun.objects.get(kind="replication")
        assert sweep.state == "succeeded" and sweep.counts["backfilled"] == 3 and sweep.counts["queued"] == 3
        for blob in Blob.objects.filter(tenant=replicating):
            assert b"".join(replica_store.open_read(blob.storage_key)) == b"".join(blob_store.open_read(blob.storage_key))
        assert replica_store.read_small(keys.manifest_key(replicating.pk, "app", digest)) == payload
        assert replica_store.read_small(keys.manifest_key(replicating.pk, "old", old_digest))
        status = replication_status_get(tenant=replicating)
        assert status["health"] == "ok" and status["lag_seconds"] == 0 and status["objects"]["replicated"] == 6

        lost = Blob.objects.get(tenant=replicating, digest=sha(b"layer-one"))
        blob_store.delete([lost.storage_key])
        integrity_audit_task.apply_async(kwargs={"tenant_id": replicating.pk}, queue=queue)
        _wait(
            lambda: ObjectAudit.objects.filter(blob=lost, status="repaired").exists(),
            40,
            "the audit to repair the blob",
            log.name,
        )
        _wait(lambda: len(hook_server.requests) == 1, 30, "the webhook", log.name)
        assert hook_server.signature_ok(hook_server.requests[0], created.secret)
        assert hook_server.requests[0].json["data"]["digest"] == lost.digest
        run = JobRun.objects.get(kind="audit")
        assert (
            run.state == "succeeded" and run.counts["missing"] == 1 and run.counts["repaired"] == 1 and run.counts["checked"] == 6
        )
        r = reg.get(f"/v2/acme/app/blobs/{lost.digest}")
        assert r.status_code == 200 and b"".join(r.streaming_content) == b"layer-one"
        assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).content == payload

        # A delivery whose message was lost is re-sent by the webhook sweep.
        webhook_event_emit(tenant=replicating, event="integrity.problem", data={"note": "lost message"})  # on_commit sends it...
        lost_delivery = WebhookDelivery.objects.filter(tenant=replicating).order_by("-pk").first()
        _wait(
            lambda: WebhookDelivery.objects.filter(pk=lost_delivery.pk, state="delivered").exists(),
            30,
            "the second webhook",
            log.name,
        )
        WebhookDelivery.objects.filter(pk=lost_delivery.pk).update(
            state="pending", updated_at=timezone.now() - timedelta(hours=1)
        )  # ... as if it never had been
        webhook_sweep_task.apply_async(queue=queue)
        _wait(lambda: len(hook_server.requests) == 3, 30, "the re-sent webhook", log.name)
        assert hook_server.requests[1].headers["X-Wharf-Delivery"] == hook_server.requests[2].headers["X-Wharf-Delivery"]
    finally:
        _stop(worker)
        log.close()
        os.unlink(log.name)


@pytest.mark.django_db(transaction=True)
def test_a_copy_killed_mid_upload_is_resumed_and_completes_once(reg, tenant, replica_store, target):
    from gateway.replication.stores import target_store
    from gateway.replication.targets import tenant_replication_set

    data = layer("killed", 16 * 1024 * 1024 + 7)
    d = reg.push_blob("app", data)
    blob = Blob.objects.get(tenant=tenant, digest=d)
    replicating = tenant_replication_set(tenant=tenant, target=target).tenant  # opted in afterwards: the sweep backfills it
    # The operator command in a child process: 5 MiB parts, paced at 2 requests/s so it is still copying when killed.
    env = subprocess_env(GATEWAY_S3_PART_SIZE=str(5 * 1024 * 1024), GATEWAY_JOB_S3_REQUESTS_PER_SECOND="2")
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "replicate", "--tenant", "acme"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: ObjectReplica.objects.filter(digest=d).exclude(multipart_id="").exists(), 60, "the multipart copy to start")
        time.sleep(0.6)  # let it send a part
    finally:
        _stop(child, signal.SIGKILL)
    row = ObjectReplica.objects.get(digest=d)
    assert row.state == "pending" and row.multipart_id and row.lease_until > timezone.now() and row.attempts == 1
    prefix = keys.uploads_prefix(replicating.pk)
    assert [u.key for u in replica_store.list_multipart(prefix)] == [blob.storage_key]  # the dead worker's upload
    assert replica_store.stat(blob.storage_key) is None
    dead_run = JobRun.objects.get(kind="replication", state="running")

    # Later (the lease and the heartbeat have expired): the retry aborts the leftover upload and copies again.
    ObjectReplica.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    JobRun.objects.filter(pk=dead_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    result = replication_sweep(tenant_id=replicating.pk, sync=True)
    assert result.counts["replicated"] == 1
    row.refresh_from_db()
    assert row.state == "replicated" and row.attempts == 2 and row.multipart_id == "" and row.lease_until is None
    assert list(replica_store.list_multipart(prefix)) == []
    assert b"".join(target_store(target).open_read(blob.storage_key)) == data
    dead_run.refresh_from_db()
    assert dead_run.state == "failed" and "abandoned" in dead_run.errors[-1]["error"]

    # Run twice: nothing is copied again.
    again = replication_sweep(tenant_id=replicating.pk, sync=True, force=True)
    assert again.counts.get("replicated", 0) == 0
    assert ObjectReplica.objects.get(pk=row.pk).replicated_at == row.replicated_at
