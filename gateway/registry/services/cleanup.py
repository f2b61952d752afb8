"""Stale upload sessions and orphaned multipart uploads (house style rule 27).

Storj has no lifecycle rule for incomplete multipart uploads and bills them until they are
aborted (docs/storj.md §8), so we abort them ourselves, from the database first and the bucket listing second:

1. Stale sessions: an ACTIVE session idle longer than the timeout, whose request lease has
   expired, is closed (CANCELLED, tail bytes dropped) by one conditional UPDATE ... SKIP LOCKED;
   a request that wants to finish it afterwards finds it gone (BLOB_UPLOAD_UNKNOWN). Its
   multipart upload is aborted after the COMMIT, and its key is recorded for the checked drain
   (an object is there if the worker died between completing the upload and the blob row).
2. Finished sessions (DONE or CANCELLED longer than the timeout) lose their rows; their keys go
   through the same drain, which keeps every key some blob row still uses.
   Both steps also record every tail object of a session that ever wrote one (listed under its
   tail prefix, so a tail left by a request that died before its row update goes too; decisions/0012).
3. Orphans: the bucket's pending multipart uploads under the tenant's `uploads/` prefix that no
   ACTIVE session owns and that were started longer than the timeout ago are aborted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.registry.models import BlobUpload, JobRun, ObjectDeletion
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.gc_sweep import GcSettings
from gateway.registry.services.jobruns import JobReport, jobrun_claim, jobrun_record, jobrun_to_completion
from gateway.registry.stores import store_for
from gateway.storage import BlobStore, keys

log = logging.getLogger(__name__)

KIND_UPLOADS = "uploads_cleanup"
LISTED_MAX = 1000

_STALE_WHERE = (
    "tenant_id = %(tenant)s AND state = 'active' AND last_activity_at < %(cutoff)s "
    "AND (leased_until IS NULL OR leased_until < %(now)s)"
)
_STALE_CLOSE = f"""
UPDATE registry_blobupload SET state = 'cancelled', tail = ''::bytea, tail_size = 0, leased_until = NULL, updated_at = %(now)s
WHERE id IN (SELECT id FROM registry_blobupload WHERE {_STALE_WHERE} ORDER BY last_activity_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, storage_key, multipart_id, tail_spilled
"""
_STALE_LIST = f"""
SELECT id, storage_key, multipart_id, tail_size, last_activity_at FROM registry_blobupload
WHERE {_STALE_WHERE} ORDER BY last_activity_at, id LIMIT %(limit)s
"""
_FINISHED_DELETE = """
DELETE FROM registry_blobupload WHERE id IN (
    SELECT id FROM registry_blobupload
    WHERE tenant_id = %(tenant)s AND state IN ('done', 'cancelled') AND updated_at < %(cutoff)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, storage_key, tail_spilled
"""


@dataclass(kw_only=True)
class CleanupReport(JobReport):
    """What one `uploads_cleanup` invocation did (or, dry run, would do)."""

    tenant: str
    bucket: str
    dry_run: bool
    idle_timeout_seconds: int
    sessions: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)

    def continuation(self) -> dict[str, Any] | None:
        # A dry run looks at one batch of each kind only: continuing would list the same again.
        return None if self.dry_run else super().continuation()

    def merged(self, later: CleanupReport) -> CleanupReport:
        super().merged(later)
        self.sessions += later.sessions[: max(LISTED_MAX - len(self.sessions), 0)]
        self.orphans += later.orphans[: max(LISTED_MAX - len(self.orphans), 0)]
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _session_objects(*, tenant: Tenant, store: BlobStore, ended: list[tuple[Any, str, bool]]) -> list[DeletionItem]:
    """Deletion records for ended sessions: each one's key, and every tail object of those that wrote tails.

    A tail is ledgered with the size and time its listing gives (Storj bills it like any object). The
    session's key is not: an object there is a blob's (ledgered by GC's record) or, rarely, the orphan of a
    finish killed before its blob row, whose size would cost a HEAD (docs/decisions/0052).
    """
    items = [DeletionItem(ObjectDeletion.Kind.DATA, key, "", str(uid)) for uid, key, _ in ended]
    for uid, _, spilled in ended:
        if spilled:
            prefix = keys.upload_tail_prefix(tenant.pk, uuid.UUID(str(uid)))
            items += [
                DeletionItem(ObjectDeletion.Kind.DATA, o.key, "", str(uid), o.size, o.last_modified) for o in store.list(prefix)
            ]
    return items


def _stale_sessions(
    *, tenant: Tenant, store: BlobStore, now: datetime, cutoff: datetime, limit: int, report: CleanupReport
) -> int:
    """Close (or, dry run, list) one batch of stale sessions and abort their multipart uploads; returns how many."""
    params: dict[str, Any] = {"tenant": tenant.pk, "cutoff": cutoff, "now": now, "limit": limit}
    if report.dry_run:
        with connection.cursor() as cursor:
            cursor.execute(_STALE_LIST, params)
            rows = cursor.fetchall()
        report.sessions += [
            {"upload": str(uid), "key": key, "multipart": bool(mp), "tail_bytes": tail or 0, "idle_since": seen.isoformat()}
            for uid, key, mp, tail, seen in rows[: max(LISTED_MAX - len(report.sessions), 0)]
        ]
        report.add(
            sessions_aborted=len(rows),
            multipart_aborted=sum(1 for r in rows if r[2]),
            tail_bytes_removed=sum(r[3] or 0 for r in rows),
        )
        return 0  # nothing changed: the dry run looks at one batch only
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_STALE_CLOSE, params)
            closed = cursor.fetchall()
        # The key may hold bytes of a completed upload whose blob row never came: the drain checks and deletes.
        items = _session_objects(tenant=tenant, store=store, ended=[(uid, key, spilled) for uid, key, _, spilled in closed])
        object_deletions_record(tenant=tenant, items=items)
    aborted = 0
    for _, key, multipart_id, _ in closed:
        if multipart_id:
            store.multipart_abort(key, multipart_id)
            aborted += 1
    report.add(sessions_aborted=len(closed), multipart_aborted=aborted, tail_objects_recorded=len(items) - len(closed))
    return len(closed)


def _finished_sessions(*, tenant: Tenant, store: BlobStore, cutoff: datetime, limit: int, report: CleanupReport) -> int:
    """Delete one batch of long-finished session rows, recording their keys for the drain; returns how many."""
    if report.dry_run:
        n = BlobUpload.objects.filter(
            tenant=tenant, state__in=[BlobUpload.State.DONE, BlobUpload.State.CANCELLED], updated_at__lt=cutoff
        ).count()
        report.add(sessions_deleted=n)
        return 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_FINISHED_DELETE, {"tenant": tenant.pk, "cutoff": cutoff, "limit": limit})
            gone = cursor.fetchall()
        items = _session_objects(tenant=tenant, store=store, ended=gone)
        object_deletions_record(tenant=tenant, items=items)
    report.add(sessions_deleted=len(gone), tail_objects_recorded=len(items) - len(gone))
    return len(gone)


def _orphans(*, tenant: Tenant, store: BlobStore, cutoff: datetime, limit: int, page: int, report: CleanupReport) -> bool:
    """Abort (or list) multipart uploads under the tenant's uploads/ prefix that no ACTIVE session owns; True if all were seen."""
    listing = store.list_multipart(keys.uploads_prefix(tenant.pk))
    seen = 0
    while seen < limit:
        chunk = list(islice(listing, min(page, limit - seen)))
        if not chunk:
            return True
        seen += len(chunk)
        owned = set(
            BlobUpload.objects.filter(
                tenant=tenant, state=BlobUpload.State.ACTIVE, multipart_id__in=[u.upload_id for u in chunk]
            ).values_list("multipart_id", flat=True)
        )
        active_keys = set(
            BlobUpload.objects.filter(
                tenant=tenant, state=BlobUpload.State.ACTIVE, storage_key__in=[u.key for u in chunk]
            ).values_list("storage_key", flat=True)
        )
        for u in chunk:
            if u.upload_id in owned:
                continue
            if u.initiated is None:
                if u.key in active_keys:
                    continue  # no start time to judge by and a live session on the key: keep
            elif u.initiated >= cutoff:
                continue  # young: its session may not have recorded the upload id yet
            report.add(orphans_aborted=1)
            if len(report.orphans) < LISTED_MAX:
                report.orphans.append(
                    {"key": u.key, "upload_id": u.upload_id, "initiated": u.initiated.isoformat() if u.initiated else None}
                )
            if not report.dry_run:
                store.multipart_abort(u.key, u.upload_id)
        report.add(multipart_listed=len(chunk))
    return next(listing, None) is None


def uploads_cleanup(
    *,
    tenant: Tenant,
    dry_run: bool = False,
    job_id: int | None = None,
    idle_timeout: timedelta | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    task_id: str = "",
) -> CleanupReport | None:
    """One bounded invocation of the tenant's upload sweep (stale sessions, old session rows, orphaned multipart uploads); None if held.

    Idempotent: sessions are claimed by a conditional UPDATE, aborting a missing upload
    succeeds, and keys are deleted only through the checked drain; `done` False means the
    batch budget ran out and a continuation should follow.
    """
    timeout, size, budget = _sweep_limits(idle_timeout=idle_timeout, batch_size=batch_size, max_batches=max_batches)
    store = store_for(tenant)
    with jobrun_claim(kind=KIND_UPLOADS, tenant=tenant, dry_run=dry_run, job_id=job_id, task_id=task_id) as job:
        if job is None:
            return None
        report = CleanupReport(
            tenant=tenant.slug,
            bucket=store.bucket,
            dry_run=dry_run,
            idle_timeout_seconds=int(timeout.total_seconds()),
            job_id=job.pk,
        )
        now = timezone.now()
        cutoff = now - timeout
        done, budget = _in_batches(
            job,
            report,
            budget,
            size,
            lambda: _stale_sessions(tenant=tenant, store=store, now=now, cutoff=cutoff, limit=size, report=report),
        )
        if done:
            done, budget = _in_batches(
                job,
                report,
                budget,
                size,
                lambda: _finished_sessions(tenant=tenant, store=store, cutoff=cutoff, limit=size, report=report),
            )
        if done and budget > 0:
            before = dict(report.counts)
            done = _orphans(tenant=tenant, store=store, cutoff=cutoff, limit=size * budget, page=size, report=report)
            _progress(job, report, before)
        if not dry_run:
            deleted, kept, drained = object_deletions_drain(tenant=tenant, batch_size=size, max_batches=max(budget, 1))
            report.add(objects_deleted=deleted, objects_kept=kept)
            jobrun_record(run=job, counts={"objects_deleted": deleted, "objects_kept": kept})
            done = done and drained
        report.done = done
        report.close(job)
        return report


def _sweep_limits(
    *, idle_timeout: timedelta | None, batch_size: int | None, max_batches: int | None
) -> tuple[timedelta, int, int]:
    """(idle timeout, batch size, batch budget): each argument, or GcSettings' value when None; ValueError when out of range."""
    cfg = GcSettings.current()
    timeout = cfg.upload_idle_timeout if idle_timeout is None else idle_timeout
    size = cfg.batch_size if batch_size is None else batch_size
    budget = cfg.max_batches if max_batches is None else max_batches
    if timeout < timedelta(0):
        raise ValueError(f"idle_timeout must not be negative, got {timeout}")
    if not 1 <= size <= 1000:
        raise ValueError(f"batch_size must be between 1 and 1000, got {size}")
    if budget < 1:
        raise ValueError(f"max_batches must be at least 1, got {budget}")
    return timeout, size, budget


def _in_batches(job: JobRun, report: CleanupReport, budget: int, size: int, step: Callable[[], int]) -> tuple[bool, int]:
    """Run `step` (one batch, returns how many rows it handled) until a short batch or the end of the budget: (finished, budget left)."""
    while budget > 0:
        budget -= 1
        before = dict(report.counts)
        short = step() < size
        _progress(job, report, before)
        if short:
            return True, budget
    return False, budget


def _progress(job: JobRun, report: CleanupReport, before: dict[str, int]) -> None:
    """Record the counts added since `before` on the job run (its heartbeat too)."""
    delta = {k: v - before.get(k, 0) for k, v in report.counts.items() if v != before.get(k, 0)}
    if delta:
        jobrun_record(run=job, counts=delta)


def uploads_cleanup_to_completion(
    *, tenant: Tenant, dry_run: bool = False, idle_timeout: timedelta | None = None
) -> CleanupReport | None:
    """Run the tenant's upload sweep invocation after invocation until done (the task chain's code); None if held."""
    return jobrun_to_completion(
        lambda job_id=None: uploads_cleanup(tenant=tenant, dry_run=dry_run, job_id=job_id, idle_timeout=idle_timeout),
        CleanupReport.merged,
    )
