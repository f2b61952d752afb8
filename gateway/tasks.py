"""Celery tasks of the gateway. Thin: each validates nothing itself and calls one service.

Services are imported inside the task bodies, so importing this module (Celery autodiscovery,
beat) loads no domain code.
"""

from __future__ import annotations

from typing import Any

import redis
from django.db import DatabaseError

from gateway.core.tasking import task
from gateway.storage import StorageUnavailable

# A backlog is drained by the task re-queueing itself, at most this many times per run.
USAGE_FLUSH_MAX_REQUEUES = 20


@task(name="gateway.usage.flush", retry_on=(redis.RedisError, DatabaseError))
def usage_flush_task(*, max_items: int = 5000, requeues_left: int = USAGE_FLUSH_MAX_REQUEUES) -> int:
    """Deliver buffered registry events to their subscribers (usage, replication); re-queues itself while full batches come out (replay-safe)."""
    from gateway.registry.services.stream import events_flush

    taken = events_flush(max_items=max_items)
    if taken >= max_items and requeues_left > 0:
        usage_flush_task.apply_async(kwargs={"max_items": max_items, "requeues_left": requeues_left - 1})
    return taken


@task(name="gateway.jobs.close_stale", retry_on=(DatabaseError,))
def jobruns_close_stale_task() -> int:
    """Close JobRuns left `running` by a worker that died (no heartbeat for GATEWAY_JOB_STALE_SECONDS); idempotent."""
    from gateway.replication.jobs import jobruns_close_stale

    return jobruns_close_stale()


# --- GC, retention and the upload sweep (gateway/registry/services/{gc,retention,cleanup}.py) -------------
# All on the "gc" queue, so long audits and replication ("audit") never hold them up; each is one
# bounded invocation that re-queues itself while work remains, at most MAINTENANCE_MAX_REQUEUES times.

GC_QUEUE = "gc"
MAINTENANCE_MAX_REQUEUES = 20
FANOUT_BATCH = 500


def _queue_of(task_obj: Any) -> str | None:
    """The queue the running message came from (None when called directly: the task's declared queue)."""
    request = task_obj.request
    if request.called_directly:
        return None
    return (request.delivery_info or {}).get("routing_key") or None


def _requeue(task_obj: Any, **kwargs: Any) -> None:
    # The next chunk goes where this one came from (a dedicated worker's queue stays dedicated).
    task_obj.apply_async(kwargs=kwargs, queue=_queue_of(task_obj))


def _fan_out(fanout: Any, per_tenant: Any, after_id: int) -> int:
    from gateway.registry.services.gc import gc_tenant_ids

    ids = gc_tenant_ids(after_id=after_id, limit=FANOUT_BATCH)
    for tenant_id in ids:
        per_tenant.apply_async(kwargs={"tenant_id": tenant_id}, queue=_queue_of(fanout))
    if len(ids) == FANOUT_BATCH:
        _requeue(fanout, after_id=ids[-1])
    return len(ids)


def _chain(task_fn: Any, *, report: Any, requeues_left: int, **kwargs: Any) -> None:
    """Re-queue a maintenance chain with its next kwargs, or stop its JobRun at the invocation cap."""
    from gateway.registry.services.gc import jobrun_stop

    if requeues_left > 0:
        _requeue(task_fn, job_id=report.job_id, requeues_left=requeues_left - 1, **kwargs)
    else:
        jobrun_stop(job_id=report.job_id, reason="invocation cap reached; the next scheduled run continues")


def _tenant(tenant_id: int) -> Any:
    from accounts.models import Tenant

    return Tenant.objects.filter(pk=tenant_id).first()


@task(name="gateway.gc.all", queue=GC_QUEUE, retry_on=(DatabaseError,))
def gc_all_task(*, after_id: int = 0) -> int:
    """Queue one GC chain per tenant (ascending ids, FANOUT_BATCH per invocation, re-queued while tenants remain)."""
    return _fan_out(gc_all_task, gc_tenant_task, after_id)


@task(name="gateway.gc.tenant", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def gc_tenant_task(*, tenant_id: int, job_id: int | None = None, requeues_left: int = MAINTENANCE_MAX_REQUEUES) -> dict | None:
    """One bounded GC invocation of a tenant (quiet if the tenant is gone or its GC is running elsewhere); chains while work remains."""
    from gateway.registry.services.gc import gc_run

    tenant = _tenant(tenant_id)
    if tenant is None:
        return None
    report = gc_run(tenant=tenant, job_id=job_id, task_id=gc_tenant_task.request.id or "")
    if report is None:
        return None
    if not report.done:
        _chain(gc_tenant_task, report=report, requeues_left=requeues_left, tenant_id=tenant_id)
    return report.counts


@task(name="gateway.retention.all", queue=GC_QUEUE, retry_on=(DatabaseError,))
def retention_all_task(*, after_id: int = 0) -> int:
    """Queue one retention chain per tenant (ascending ids, FANOUT_BATCH per invocation)."""
    return _fan_out(retention_all_task, retention_tenant_task, after_id)


@task(name="gateway.retention.tenant", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def retention_tenant_task(
    *, tenant_id: int, job_id: int | None = None, after_repository_id: int = 0, requeues_left: int = MAINTENANCE_MAX_REQUEUES
) -> dict | None:
    """Apply a tenant's retention policies to a bounded run of repositories; chains over the rest (quiet if gone or held)."""
    from gateway.registry.services.retention import retention_apply

    tenant = _tenant(tenant_id)
    if tenant is None:
        return None
    report = retention_apply(
        tenant=tenant, job_id=job_id, after_repository_id=after_repository_id, task_id=retention_tenant_task.request.id or ""
    )
    if report is None:
        return None
    if not report.done and report.next_after_repository_id is not None:
        _chain(
            retention_tenant_task, report=report, requeues_left=requeues_left, tenant_id=tenant_id,
            after_repository_id=report.next_after_repository_id,
        )
    return report.counts


@task(name="gateway.uploads.cleanup_all", queue=GC_QUEUE, retry_on=(DatabaseError,))
def uploads_cleanup_all_task(*, after_id: int = 0) -> int:
    """Queue one upload sweep per tenant (ascending ids, FANOUT_BATCH per invocation)."""
    return _fan_out(uploads_cleanup_all_task, uploads_cleanup_task, after_id)


@task(name="gateway.uploads.cleanup", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def uploads_cleanup_task(*, tenant_id: int, job_id: int | None = None, requeues_left: int = MAINTENANCE_MAX_REQUEUES) -> dict | None:
    """Abort a tenant's stale upload sessions and orphaned multipart uploads, bounded; chains while work remains."""
    from gateway.registry.services.cleanup import uploads_cleanup

    tenant = _tenant(tenant_id)
    if tenant is None:
        return None
    report = uploads_cleanup(tenant=tenant, job_id=job_id, task_id=uploads_cleanup_task.request.id or "")
    if report is None:
        return None
    if not report.done:
        _chain(uploads_cleanup_task, report=report, requeues_left=requeues_left, tenant_id=tenant_id)
    return report.counts
