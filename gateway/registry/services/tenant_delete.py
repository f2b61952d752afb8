"""Deleting a tenant (docs/decisions/0022): marked `deleting` at once, then purged by a resumable background job.

`tenant_delete_start` marks the tenant deleting (so /v2/ no longer finds it, its robots stop
working and API writes on it answer 404), opens a JobRun of kind "tenant_delete" and queues the
purge after commit. `tenant_purge` is one bounded invocation of that job, in this order:

1. Drain the tenant's pending ObjectDeletion records (left by GC, retention or a killed purge).
2. Rows, in batches by pk, children before what they reference (PROTECT foreign keys): tags,
   manifest edges, repository links, uploads, manifests, blobs, policies, repositories, usage.
3. Objects: abort the multipart uploads under the tenant's prefix `t/<id>/`, then list the
   prefix and, a batch at a time, record each key as an ObjectDeletion and drain those records
   (so a worker killed between recording and deleting leaves records, never orphans).
4. The tenant row (memberships, robots, invitations, audit events and the rest cascade); its
   JobRun is detached first (tenant null, the slug kept in its counts) so the report survives.

Each step is idempotent; a killed or re-delivered invocation repeats at most one batch. Only a
tenant whose status is `deleting` is ever purged.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.locks import tenant_lock
from accounts.models import Tenant
from accounts.tenants import tenant_deleting_mark
from gateway.core.errors import NotFound
from gateway.registry import access
from gateway.registry.models import (
    Blob,
    BlobUpload,
    JobRun,
    Manifest,
    ManifestBlob,
    ManifestChild,
    ObjectDeletion,
    Repository,
    RepositoryBlob,
    RetentionPolicy,
    Tag,
    UsageEvent,
)
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.jobruns import JobReport, jobrun_claim, jobrun_get_running, jobrun_record, jobrun_start
from gateway.registry.services.jobs import TaskRef, job_enqueue
from gateway.registry.stores import store_for
from gateway.storage.keys import tenant_prefix

log = logging.getLogger(__name__)

KIND_TENANT_DELETE = "tenant_delete"
TENANT_DELETE_TASK = TaskRef("gateway.tenants.delete", "gc")

# (count name, the tenant's rows of one model): a model comes after every model that PROTECTs it.
_ROW_STEPS: tuple[tuple[str, type[Model], str], ...] = (
    ("tags", Tag, "tenant"),
    ("manifest_children", ManifestChild, "parent__tenant"),
    ("manifest_blobs", ManifestBlob, "manifest__tenant"),
    ("repository_blobs", RepositoryBlob, "tenant"),
    ("uploads", BlobUpload, "tenant"),
    ("manifests", Manifest, "tenant"),
    ("blobs", Blob, "tenant"),
    ("retention_policies", RetentionPolicy, "tenant"),
    ("repositories", Repository, "tenant"),
    ("usage_events", UsageEvent, "tenant"),
)


def tenant_delete_start(*, tenant: Tenant, actor: str | None = None) -> JobRun:
    """Mark the tenant deleting and queue its purge after commit; the running job of an earlier request if it already is. Audited."""
    with transaction.atomic():
        locked = tenant_lock(pk=tenant.pk)
        if locked is None:
            raise NotFound(f"No tenant {tenant.slug!r}.")
        if not tenant_deleting_mark(tenant=locked, actor=actor):
            running = JobRun.objects.filter(kind=KIND_TENANT_DELETE, tenant=locked, state=JobRun.State.RUNNING).order_by("-pk")
            if (existing := running.first()) is not None:
                return existing
        run = jobrun_start(kind=KIND_TENANT_DELETE, tenant_id=locked.pk)
        kwargs = {"tenant_id": locked.pk, "job_id": run.pk}
        job_enqueue(task=TENANT_DELETE_TASK, kwargs=kwargs)
    tenant.status = locked.status
    access.caches_clear()  # this process stops serving the tenant at once; others within the cache's seconds
    return run


def tenant_deleting_ids(*, limit: int = 1000) -> list[int]:
    """Ids of the tenants marked deleting, ascending (the resume sweep's work)."""
    return list(Tenant.objects.filter(status=Tenant.Status.DELETING).order_by("pk").values_list("pk", flat=True)[:limit])


def _delete_rows(tenant: Tenant, batch_size: int) -> tuple[str, int] | None:
    """Delete one batch of the first model that still has rows of the tenant: (count name, rows deleted), or None when none is left."""
    for name, model, path in _ROW_STEPS:
        qs: QuerySet = model._default_manager.filter(**{path: tenant})
        ids = list(qs.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if ids:
            with transaction.atomic():
                model._default_manager.filter(pk__in=ids).delete()
            return f"{name}_deleted", len(ids)
    return None


def _abort_multipart(tenant: Tenant, batch_size: int) -> int:
    """Abort up to `batch_size` pending multipart uploads under the tenant's prefix; how many."""
    store = store_for(tenant)
    aborted = 0
    for pending in store.list_multipart(tenant_prefix(tenant.pk)):
        store.multipart_abort(pending.key, pending.upload_id)
        aborted += 1
        if aborted >= batch_size:
            break
    return aborted


def _delete_objects(tenant: Tenant, batch_size: int) -> int:
    """Record up to `batch_size` of the objects left under the tenant's prefix for deletion and drain them; how many went."""
    keys: list[str] = []
    for stat in store_for(tenant).list(tenant_prefix(tenant.pk)):
        keys.append(stat.key)
        if len(keys) >= batch_size:
            break
    if not keys:
        return 0
    with transaction.atomic():
        # Not ledgered (no size): the tenant row goes at the end, and its ledger with it.
        ids = object_deletions_record(tenant=tenant, items=[DeletionItem(ObjectDeletion.Kind.DATA, k) for k in keys])
    deleted, _, _ = object_deletions_drain(tenant=tenant, batch_size=batch_size, max_batches=1, ids=ids)
    return deleted


def _step(tenant: Tenant, batch_size: int) -> dict[str, int] | None:
    """One batch of the first phase with work left, as counts; None when only the tenant row is left."""
    if ObjectDeletion.objects.filter(tenant=tenant).exists():
        deleted, _, _ = object_deletions_drain(tenant=tenant, batch_size=batch_size, max_batches=1)
        return {"objects_deleted": deleted, "batches": 1}
    rows = _delete_rows(tenant, batch_size)
    if rows is not None:
        return {rows[0]: rows[1], "batches": 1}
    aborted = _abort_multipart(tenant, batch_size)
    if aborted:
        return {"multipart_aborted": aborted, "batches": 1}
    deleted = _delete_objects(tenant, batch_size)
    if deleted:
        return {"objects_deleted": deleted, "batches": 1}
    return None


def _tenant_row_delete(tenant: Tenant, job: JobRun, actor: str) -> None:
    """Detach the deletion's runs from the tenant (they outlive it), then delete the tenant row (what is left cascades); audited outside the tenant."""
    with transaction.atomic():
        JobRun.objects.filter(kind=KIND_TENANT_DELETE, tenant=tenant).update(tenant=None)
        job.tenant_id = None
        jobrun_record(run=job, counts={"tenant": tenant.slug, "tenant_id": tenant.pk, "tenants_deleted": 1})
        Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.DELETING).delete()
        audit_record(action="tenant.purge", actor=actor, target=tenant.slug, detail={"tenant_id": tenant.pk, "job_id": job.pk})


def tenant_purge(
    *, tenant: Tenant, job_id: int | None = None, task_id: str = "", batch_size: int | None = None, max_batches: int | None = None
) -> JobReport | None:
    """One bounded invocation of a deleting tenant's purge (see the module doc); None when the tenant is not deleting or another worker holds the job.

    A `job_id` whose run is no longer running (closed as abandoned) starts a new run: the tenant stays deleting until purged.
    """
    if tenant.status != Tenant.Status.DELETING:
        log.warning("tenant %s is %s, not deleting: not purged", tenant.pk, tenant.status)
        return None
    size = int(batch_size or settings.GATEWAY_TENANT_DELETE_BATCH_SIZE)
    batches = int(max_batches or settings.GATEWAY_TENANT_DELETE_MAX_BATCHES)
    if job_id is not None and jobrun_get_running(run_id=job_id, kind=KIND_TENANT_DELETE) is None:
        job_id = None
    if job_id is None:  # the resume sweep: continue the run tenant_delete_start opened, if it still runs
        running = JobRun.objects.filter(kind=KIND_TENANT_DELETE, tenant=tenant, state=JobRun.State.RUNNING)
        job_id = running.order_by("-pk").values_list("pk", flat=True).first()
    with jobrun_claim(kind=KIND_TENANT_DELETE, tenant=tenant, dry_run=False, job_id=job_id, task_id=task_id) as job:
        if job is None:
            return None
        report = JobReport(job_id=job.pk)
        for _ in range(batches):
            counts = _step(tenant, size)
            if counts is None:
                _tenant_row_delete(tenant, job, actor=SYSTEM_ACTOR)
                report.done = True
                break
            report.add(**counts)
            jobrun_record(run=job, counts=counts)
        report.close(job)
        return report


def tenant_purge_to_completion(*, tenant: Tenant, **kwargs: Any) -> JobReport | None:
    """Run the purge's invocations one after another in this process (tests, a management shell), as its task chain would."""
    from gateway.registry.services.jobruns import jobrun_to_completion

    def invoke(**nxt: Any) -> JobReport | None:
        fresh = Tenant.objects.filter(pk=tenant.pk).first()
        return tenant_purge(tenant=fresh, **{**kwargs, **nxt}) if fresh is not None else None

    return jobrun_to_completion(invoke, lambda a, b: a.merged(b))
