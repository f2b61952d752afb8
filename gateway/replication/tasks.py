"""Audit and replication tasks. Thin: ids in, one service call, re-queue while work remains.

All run on the "audit" queue, so long audits and big copies never delay GC ("gc") or the
short tasks on "celery" (usage flush, webhooks). Services are imported inside the bodies.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError

from gateway.core.tasking import task
from gateway.storage import StorageUnavailable

QUEUE = "audit"


def _queue_of(task_obj: Any) -> str | None:
    """The queue the running message came from, so follow-up work stays on a dedicated worker's queue (None: the declared one)."""
    request = task_obj.request
    if request.called_directly:
        return None
    return (request.delivery_info or {}).get("routing_key") or None


@task(name="gateway.integrity.audit", queue=QUEUE, retry_on=(StorageUnavailable, DatabaseError), max_retries=5)
def integrity_audit_task(*, tenant_id: int | None = None, run_id: int | None = None, requeues_left: int | None = None) -> dict:
    """Audit one batch of due objects (HEAD, sampled re-hash, repair, report); re-queues itself while objects are due."""
    from gateway.registry.services.jobruns import jobrun_chain
    from gateway.replication.conf import app_settings
    from gateway.replication.integrity import integrity_audit

    left = app_settings.audit_max_requeues if requeues_left is None else requeues_left
    result = integrity_audit(tenant_id=tenant_id, run_id=run_id, max_batches=1, task_id=integrity_audit_task.request.id or "")
    queue = _queue_of(integrity_audit_task)
    jobrun_chain(
        report=result,
        requeues_left=left,
        requeue=lambda **nxt: integrity_audit_task.apply_async(kwargs={"tenant_id": tenant_id, **nxt}, queue=queue),
    )
    return dict(result.counts)


@task(name="gateway.replication.object", queue=QUEUE, retry_on=(StorageUnavailable, DatabaseError), max_retries=8)
def replicate_object_task(*, replica_id: int) -> str:
    """Copy one blob or manifest to the tenant's replica target and verify it (idempotent; claims the row)."""
    from gateway.replication.services import replica_replicate

    return replica_replicate(replica_id=replica_id)


@task(name="gateway.replication.sweep", queue=QUEUE, retry_on=(StorageUnavailable, DatabaseError), max_retries=3)
def replication_sweep_task(*, tenant_id: int | None = None, run_id: int | None = None, requeues_left: int = 10) -> dict:
    """Backfill, queue due copies and verify due replicas, one bounded batch; re-queues itself while work remains."""
    from gateway.registry.services.jobruns import jobrun_chain
    from gateway.replication.sweep import replication_sweep

    queue = _queue_of(replication_sweep_task)
    result = replication_sweep(tenant_id=tenant_id, run_id=run_id, task_id=replication_sweep_task.request.id or "", queue=queue)
    jobrun_chain(
        report=result,
        requeues_left=requeues_left,
        requeue=lambda **nxt: replication_sweep_task.apply_async(kwargs={"tenant_id": tenant_id, **nxt}, queue=queue),
    )
    return dict(result.counts)
