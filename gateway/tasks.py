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
    from gateway.registry.services.jobruns import jobruns_close_stale

    return jobruns_close_stale()


# --- Daily storage snapshots (gateway/registry/services/usage_snapshots.py): the dashboard's storage history ---


@task(name="gateway.usage.snapshot_all", retry_on=(DatabaseError,))
def usage_snapshot_all_task(*, after_id: int = 0) -> int:
    """Queue one storage snapshot per tenant not being deleted (ascending ids, FANOUT_BATCH per invocation)."""
    return _fan_out(usage_snapshot_all_task, usage_snapshot_task, after_id)


@task(name="gateway.usage.snapshot", retry_on=(DatabaseError,))
def usage_snapshot_task(*, tenant_id: int) -> int | None:
    """Record the tenant's stored bytes as today's snapshot (idempotent: a re-run replaces the day); quiet if it is gone."""
    from gateway.registry.services.usage_snapshots import storage_snapshot_take_by_id

    snapshot = storage_snapshot_take_by_id(tenant_id=tenant_id)
    return snapshot.stored_bytes if snapshot is not None else None


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


def _tenant_step(task_fn: Any, service: Any, *, tenant_id: int, requeues_left: int, **kwargs: Any) -> dict | None:
    """One bounded invocation of a tenant's maintenance job; re-queues its continuation or stops its JobRun at the cap.

    Quiet (None) when the tenant is gone or another worker holds the job.
    """
    from accounts.models import Tenant
    from gateway.registry.services.jobruns import jobrun_chain

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    report = service(tenant=tenant, task_id=task_fn.request.id or "", **kwargs)
    if report is None:
        return None
    jobrun_chain(report=report, requeues_left=requeues_left, requeue=lambda **nxt: _requeue(task_fn, tenant_id=tenant_id, **nxt))
    return report.counts


@task(name="gateway.gc.all", queue=GC_QUEUE, retry_on=(DatabaseError,))
def gc_all_task(*, after_id: int = 0) -> int:
    """Queue one GC chain per tenant (ascending ids, FANOUT_BATCH per invocation, re-queued while tenants remain)."""
    return _fan_out(gc_all_task, gc_tenant_task, after_id)


@task(name="gateway.gc.tenant", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def gc_tenant_task(
    *, tenant_id: int, job_id: int | None = None, dry_run: bool = False, requeues_left: int = MAINTENANCE_MAX_REQUEUES
) -> dict | None:
    """One bounded GC invocation of a tenant (quiet if the tenant is gone or its GC is running elsewhere); chains while work remains."""
    from gateway.registry.services.gc import gc_run

    kwargs = {"dry_run": True} if dry_run else {}  # a continuation never carries it: a dry run is one invocation
    return _tenant_step(gc_tenant_task, gc_run, tenant_id=tenant_id, requeues_left=requeues_left, job_id=job_id, **kwargs)


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

    return _tenant_step(
        retention_tenant_task,
        retention_apply,
        tenant_id=tenant_id,
        requeues_left=requeues_left,
        job_id=job_id,
        after_repository_id=after_repository_id,
    )


@task(name="gateway.uploads.cleanup_all", queue=GC_QUEUE, retry_on=(DatabaseError,))
def uploads_cleanup_all_task(*, after_id: int = 0) -> int:
    """Queue one upload sweep per tenant (ascending ids, FANOUT_BATCH per invocation)."""
    return _fan_out(uploads_cleanup_all_task, uploads_cleanup_task, after_id)


@task(name="gateway.uploads.cleanup", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def uploads_cleanup_task(
    *, tenant_id: int, job_id: int | None = None, requeues_left: int = MAINTENANCE_MAX_REQUEUES
) -> dict | None:
    """Abort a tenant's stale upload sessions and orphaned multipart uploads, bounded; chains while work remains."""
    from gateway.registry.services.cleanup import uploads_cleanup

    return _tenant_step(uploads_cleanup_task, uploads_cleanup, tenant_id=tenant_id, requeues_left=requeues_left, job_id=job_id)


# A repository's deletion chains until it is done: its cap is generous (each invocation deletes up to
# MAX_BATCHES batches), since a run stopped at the cap would leave the repository half deleted.
REPOSITORY_DELETE_MAX_REQUEUES = 10_000


@task(name="gateway.repositories.delete", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def repository_delete_task(
    *, tenant_id: int, repository_id: int, job_id: int, requeues_left: int = REPOSITORY_DELETE_MAX_REQUEUES
) -> dict | None:
    """Delete a bounded part of a repository taken out of the registry (tags, manifests, uploads, links, then the row); chains until done."""
    from gateway.registry.services.repository_delete import repository_delete_run

    return _tenant_step(
        repository_delete_task,
        repository_delete_run,
        tenant_id=tenant_id,
        requeues_left=requeues_left,
        job_id=job_id,
        repository_id=repository_id,
    )


# --- Tenant deletion (gateway/registry/services/tenant_delete.py; queued by name from tenant_delete_start) ---
# Nothing else would ever finish a deleting tenant, so its chain has no practical cap.
TENANT_DELETE_MAX_REQUEUES = 100_000


@task(name="gateway.tenants.delete", queue=GC_QUEUE, retry_on=(StorageUnavailable, DatabaseError))
def tenant_delete_task(
    *, tenant_id: int, job_id: int | None = None, requeues_left: int = TENANT_DELETE_MAX_REQUEUES
) -> dict | None:
    """One bounded invocation of a deleting tenant's purge (quiet if it is gone, not deleting, or held); chains while work remains."""
    from gateway.registry.services.tenant_delete import tenant_purge

    return _tenant_step(tenant_delete_task, tenant_purge, tenant_id=tenant_id, requeues_left=requeues_left, job_id=job_id)


@task(name="gateway.tenants.delete_resume", queue=GC_QUEUE, retry_on=(DatabaseError,))
def tenant_delete_resume_task() -> int:
    """Queue the purge of every tenant still marked deleting (each is quiet where another worker runs it); how many."""
    from gateway.registry.services.tenant_delete import tenant_deleting_ids

    ids = tenant_deleting_ids()
    for tenant_id in ids:
        tenant_delete_task.apply_async(kwargs={"tenant_id": tenant_id}, queue=_queue_of(tenant_delete_resume_task))
    return len(ids)
