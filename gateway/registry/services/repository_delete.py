"""Deleting a repository: gone from the registry at once, emptied by a resumable job (docs/decisions/0026).

`repository_delete_start` renames the row to a tombstone (`_deleted/<id>`, which the name grammar
never allows, so no client can address it), keeps the old name in `deleted_name` and queues a
`repository_delete` JobRun, in one transaction. From that COMMIT on, pulls and the catalog no longer
see the repository, and a push to the same name creates a new repository that the job never touches.

`repository_delete_run` (the task's body) then removes, in bounded batches: the tags, the manifests
(an index before its children), the upload sessions and the blob links, and last the row itself.
Every tag and manifest object is recorded for the drain under the old name (the keys were built from
it) and deleted only after the drain's check that no row names it again: a re-push of the same
manifest to the new repository keeps its object. Blobs are not deleted here: once nothing
references them, GC's mark and sweep frees those no other repository uses, through its usual locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction

from accounts.models import Tenant
from accounts.services import audit_record
from gateway.core.errors import Conflict, NotFound
from gateway.core.locks import advisory_lock
from gateway.registry.errors import BlobUploadUnknown, RangeInvalid
from gateway.registry.models import BlobUpload, JobRun, Manifest, ManifestChild, ObjectDeletion, Repository, RepositoryBlob, Tag
from gateway.registry.services import events
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.jobruns import JobReport, jobrun_finish, jobrun_get_running, jobrun_record
from gateway.registry.services.jobs import REPOSITORY_DELETE_TASK, job_enqueue, job_queued_create
from gateway.registry.services.uploads import blob_upload_cancel
from gateway.storage import StorageUnavailable, keys

log = logging.getLogger(__name__)

KIND_REPOSITORY_DELETE = "repository_delete"
BATCH_SIZE = 500
MAX_BATCHES = 20


def tombstone_name(repository_id: int) -> str:
    """The name a repository has while it is deleted: unique, and invalid by the distribution grammar."""
    return f"_deleted/{repository_id}"


def repository_delete_start(*, tenant: Tenant, name: str, actor: str = "", ip: str | None = None) -> JobRun:
    """Take the repository out of the registry now and queue the job that empties it; audited. Conflict if an immutable tag pins it."""
    with transaction.atomic():
        repo = Repository.objects.select_for_update().filter(tenant=tenant, name=name, deleted_name="").first()
        if repo is None:
            raise NotFound(f"no repository {tenant.slug}/{name}")
        pinned = Tag.objects.filter(tenant=tenant, repository=repo, immutable=True).values_list("name", flat=True).first()
        if pinned:
            raise Conflict(f"tag {pinned!r} is immutable: make it mutable before deleting the repository")
        repo.deleted_name, repo.name = repo.name, tombstone_name(repo.pk)
        repo.save(update_fields=["name", "deleted_name", "updated_at"])
        job = job_queued_create(kind=KIND_REPOSITORY_DELETE, tenant=tenant, target=name)
        audit_record(action="repository.delete", actor=actor, tenant=tenant, target=name, ip=ip, detail={"job_id": job.pk})
        job_enqueue(task=REPOSITORY_DELETE_TASK, kwargs={"tenant_id": tenant.pk, "repository_id": repo.pk, "job_id": job.pk})
    return job


@dataclass(kw_only=True)
class DeleteReport(JobReport):
    """One invocation of a repository deletion: its counts, and what the next invocation needs."""

    repository_id: int

    def continuation(self) -> dict[str, Any] | None:
        return None if self.done else {"job_id": self.job_id, "repository_id": self.repository_id}


def repository_delete_run(
    *,
    tenant: Tenant,
    job_id: int,
    repository_id: int,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    task_id: str = "",
) -> DeleteReport | None:
    """One bounded invocation of the deletion job `job_id`; None when the repository is gone or another worker is on it.

    Idempotent and resumable: each batch re-reads what is left and commits its rows with their
    recorded objects, so a killed worker's redelivered task continues where the last COMMIT left off;
    if its run was closed meanwhile (as stale) while the repository is not empty yet, a new run takes over.
    """
    if not 1 <= batch_size <= 1000:
        raise ValueError(f"batch_size must be between 1 and 1000 (Storj deletes at most 1000 keys per request), got {batch_size}")
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    with advisory_lock(f"job:{KIND_REPOSITORY_DELETE}:repository:{repository_id}") as taken:
        if not taken:
            return None
        repo = Repository.objects.filter(tenant=tenant, pk=repository_id).exclude(deleted_name="").first()
        job = jobrun_get_running(run_id=job_id, kind=KIND_REPOSITORY_DELETE)
        if job is None and repo is not None:
            job = _takeover(tenant=tenant, repo=repo, closed_id=job_id, task_id=task_id)
        if job is None or job.tenant_id != tenant.pk:
            return None
        if task_id and not job.task_id:
            JobRun.objects.filter(pk=job.pk).update(task_id=task_id[:64])
        report = DeleteReport(job_id=job.pk, repository_id=repository_id)
        try:
            report.done = repo is None or _batches(tenant=tenant, repo=repo, job=job, size=batch_size, batches=max_batches)
        except (StorageUnavailable, DatabaseError):
            raise  # the task retries and this run continues where its last batch committed
        except Exception as exc:
            jobrun_finish(run=job, failed=True, error=f"{type(exc).__name__}: {exc}")
            raise
        report.counts = dict(job.counts or {})
        report.close(job)
        log.info("repository delete %s: %s", job.target, report.counts, extra={"job_id": job.pk, "done": report.done})
        return report


def _takeover(*, tenant: Tenant, repo: Repository, closed_id: int, task_id: str) -> JobRun:
    """A new run for a repository whose run was closed before it was empty (e.g. as stale, while its task waited for redelivery)."""
    log.warning(
        "repository delete %s: run %s was closed before the repository was empty; a new run takes over",
        repo.deleted_name,
        closed_id,
    )
    return JobRun.objects.create(
        kind=KIND_REPOSITORY_DELETE,
        tenant=tenant,
        target=repo.deleted_name,
        counts={"takes_over_run": closed_id},
        task_id=task_id[:64],
    )


def _batches(*, tenant: Tenant, repo: Repository, job: JobRun, size: int, batches: int) -> bool:
    """Up to `batches` batches of the deletion, each recorded in the run; True once the row itself is gone."""
    steps = (_tags_batch, _manifests_batch, _uploads_batch, _links_batch)
    for _ in range(batches):
        for step in steps:
            counts = step(tenant=tenant, repo=repo, size=size)
            if counts:
                jobrun_record(run=job, counts=counts)
                break
        else:
            if _row_delete(tenant=tenant, repo=repo):
                jobrun_record(run=job, counts={"repository_deleted": 1})
                return True
    return False


@dataclass(frozen=True)
class _Gone:
    """A deleted tag or manifest: its object's key, its reference (tag name or digest), the manifest digest and the size its event reports.

    `object_size` and `stored_since` are what Storj bills the object for (the deletion ledger, docs/decisions/0052).
    """

    key: str
    reference: str
    digest: str
    size: int
    object_size: int
    stored_since: datetime


def _objects_record(tenant: Tenant, name: str, kind: str, gone: list[_Gone]) -> list[int]:
    """Record the objects of rows deleted in the caller's transaction, under the repository's old name (their keys' name)."""
    return object_deletions_record(
        tenant=tenant, items=[DeletionItem(kind, g.key, name, g.reference, g.object_size, g.stored_since) for g in gone]
    )


def _announced(tenant: Tenant, name: str, event_kind: str, gone: list[_Gone], ids: list[int], size: int) -> dict[str, int]:
    """After COMMIT: the delete events (replication, webhooks, the meter), then the drain of the recorded objects."""
    for g in gone:
        events.record(
            tenant=tenant,
            repository=name,
            digest=g.digest,
            size=g.size,
            kind=event_kind,
            direction="delete",
            reference=g.reference,
        )
    deleted, kept, _ = object_deletions_drain(tenant=tenant, batch_size=size, max_batches=len(ids) // size + 1, ids=ids)
    return {"objects_deleted": deleted, "objects_kept": kept}


def _tags_batch(*, tenant: Tenant, repo: Repository, size: int) -> dict[str, int]:
    name = repo.deleted_name
    with transaction.atomic():
        tags = list(
            Tag.objects.select_for_update(of=("self",))
            .filter(tenant=tenant, repository=repo)
            .select_related("manifest")
            .only("id", "name", "last_pushed_at", "manifest__digest")
            .order_by("pk")[:size]
        )
        if not tags:
            return {}
        Tag.objects.filter(pk__in=[t.pk for t in tags]).delete()
        gone = [
            _Gone(
                keys.tag_key(tenant.pk, name, t.name),
                t.name,
                t.manifest.digest,
                0,
                keys.tag_object_size(t.name, t.manifest.digest),
                t.last_pushed_at,
            )
            for t in tags
        ]
        ids = _objects_record(tenant, name, ObjectDeletion.Kind.TAG, gone)
    return {"tags_deleted": len(tags), **_announced(tenant, name, "tag", gone, ids, size)}


def _manifests_batch(*, tenant: Tenant, repo: Repository, size: int) -> dict[str, int]:
    """Manifests no remaining index of the repository references (indexes go before their children)."""
    name = repo.deleted_name
    with transaction.atomic():
        held = ManifestChild.objects.filter(child__repository=repo).values("child_id")
        rows = list(
            Manifest.objects.select_for_update()
            .filter(tenant=tenant, repository=repo)
            .exclude(pk__in=held)
            .only("id", "digest", "size", "created_at")
            .order_by("-pk")[:size]
        )
        if not rows:
            return {}
        Manifest.objects.filter(pk__in=[m.pk for m in rows]).delete()
        gone = [
            _Gone(keys.manifest_key(tenant.pk, name, m.digest), m.digest, m.digest, m.size, m.size, m.created_at) for m in rows
        ]
        ids = _objects_record(tenant, name, ObjectDeletion.Kind.MANIFEST, gone)
    return {"manifests_deleted": len(rows), **_announced(tenant, name, "manifest", gone, ids, size)}


def _uploads_batch(*, tenant: Tenant, repo: Repository, size: int) -> dict[str, int]:
    """Abort the repository's open upload sessions (their multipart uploads and tails); one being written stays for the next batch."""
    open_ids = list(
        BlobUpload.objects.filter(tenant=tenant, repository=repo, state=BlobUpload.State.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)[:size]
    )
    cancelled = busy = 0
    for upload_id in open_ids:
        try:
            blob_upload_cancel(tenant=tenant, repository=repo, upload_id=upload_id)
            cancelled += 1
        except BlobUploadUnknown:
            cancelled += 1  # ended meanwhile
        except RangeInvalid:
            busy += 1
    if not open_ids:
        return {}
    return {"uploads_cancelled": cancelled, "uploads_busy": busy}


def _links_batch(*, tenant: Tenant, repo: Repository, size: int) -> dict[str, int]:
    ids = list(RepositoryBlob.objects.filter(tenant=tenant, repository=repo).order_by("pk").values_list("pk", flat=True)[:size])
    if not ids:
        return {}
    deleted, _ = RepositoryBlob.objects.filter(pk__in=ids).delete()
    return {"blob_links_deleted": deleted}


def _row_delete(*, tenant: Tenant, repo: Repository) -> bool:
    """Delete the emptied row, unless a push that resolved the old row before the rename added something meanwhile."""
    with transaction.atomic():
        # FOR UPDATE waits for, and then excludes, inserts that reference the row (they hold FOR KEY SHARE on it).
        locked = Repository.objects.select_for_update().filter(pk=repo.pk).first()
        if locked is None:
            return True
        left = (
            Tag.objects.filter(repository=repo).exists()
            or Manifest.objects.filter(repository=repo).exists()
            or RepositoryBlob.objects.filter(repository=repo).exists()
            or BlobUpload.objects.filter(repository=repo, state=BlobUpload.State.ACTIVE).exists()
        )
        if left:
            return False
        locked.delete()
    return True
