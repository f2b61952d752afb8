"""Starting background jobs on request (the admin API): a queued JobRun, then its real task, sent after COMMIT.

The task is sent by name (`send_task`): the registry does not import `gateway.tasks`, which sits
above it. The worker continues the same JobRun (its id travels as `job_id` / `run_id`), turning it
from `queued` to `running` when it starts (jobruns.jobrun_get_running).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.db import transaction

from accounts.models import Tenant
from accounts.services import audit_record
from gateway.core.errors import Conflict, ValidationError
from gateway.registry.models import JobRun
from gateway.registry.services.gc import KIND_GC
from gateway.registry.services.jobruns import jobruns_close_stale

KIND_AUDIT = "audit"  # gateway/replication/integrity.py's JOB_KIND (the replication layer sits above this one)


@dataclass(frozen=True)
class TaskRef:
    """A Celery task by its stable name and the queue it is declared on (gateway/tasks.py, gateway/replication/tasks.py)."""

    name: str
    queue: str


GC_TASK = TaskRef("gateway.gc.tenant", "gc")
AUDIT_TASK = TaskRef("gateway.integrity.audit", "audit")
REPOSITORY_DELETE_TASK = TaskRef("gateway.repositories.delete", "gc")
STARTABLE = (KIND_GC, KIND_AUDIT)
# Every kind of JobRun: services/{gc,retention,cleanup,repository_delete,tenant_delete}.py, replication/{integrity,sweep}.py.
JOB_KINDS = (KIND_GC, "retention", "uploads_cleanup", KIND_AUDIT, "replication", "repository_delete", "tenant_delete")


def job_enqueue(*, task: TaskRef, kwargs: dict[str, Any]) -> None:
    """Send `task` with `kwargs` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: current_app.send_task(task.name, kwargs=kwargs, queue=task.queue))


def job_queued_create(*, kind: str, tenant: Tenant, dry_run: bool = False, target: str = "") -> JobRun:
    """A queued JobRun, for the caller to hand to its task (call inside the caller's transaction)."""
    return JobRun.objects.create(kind=kind, tenant=tenant, state=JobRun.State.QUEUED, dry_run=dry_run, target=target)


def job_start(*, tenant: Tenant, kind: str, dry_run: bool = False, actor: str = "") -> JobRun:
    """Queue a GC (dry run or not) or an integrity audit of the tenant; audited. Conflict while a GC of the tenant is queued or running.

    The tenant row is locked while the check and the insert run, so two concurrent starts create one GC.
    """
    if kind not in STARTABLE:
        raise ValidationError(f"kind must be one of {', '.join(STARTABLE)}, got {kind!r}")
    if dry_run and kind != KIND_GC:
        raise ValidationError("dry_run applies to gc only")
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if kind == KIND_GC:
            jobruns_close_stale(kind=KIND_GC)  # a run whose worker died must not block a new one for long
            active = JobRun.objects.filter(
                kind=KIND_GC, tenant=tenant, state__in=(JobRun.State.QUEUED, JobRun.State.RUNNING)
            ).first()
            if active is not None:
                raise Conflict(f"a GC of this tenant is already {active.state}: job {active.pk}", extra={"job_id": active.pk})
        job = job_queued_create(kind=kind, tenant=tenant, dry_run=dry_run)
        audit_record(action="job.start", actor=actor, tenant=tenant, target=kind, detail={"job_id": job.pk, "dry_run": dry_run})
        if kind == KIND_GC:
            job_enqueue(task=GC_TASK, kwargs={"tenant_id": tenant.pk, "job_id": job.pk, "dry_run": dry_run})
        else:
            job_enqueue(task=AUDIT_TASK, kwargs={"tenant_id": tenant.pk, "run_id": job.pk})
    return job
