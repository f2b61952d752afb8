"""Online garbage collection of one tenant's storage target, while pushes continue (decisions/0007).

One invocation of `gc_run`:

0. Drain: delete the bucket objects of rows deleted earlier (`ObjectDeletion` records, left by a
   run that was killed between its COMMIT and its DeleteObjects call); prune the deletion ledger's
   rows too old to matter to any cost still asked for (`DeletedObject`, docs/decisions/0052).
1. Mark, set-based (a constant number of statements, no query per row): the live manifests are
   the closure of the roots — tagged manifests and manifests a retention policy keeps
   (`untagged_days`) — over index → child and subject → referrer edges; live blobs are those a
   live manifest references. Every other manifest and blob gets `gc_candidate_since = now`
   unless it has a mark already; live rows lose theirs. Rows a push holds are skipped.
2. Sweep manifests marked at or before `now - grace`, newest first (an index before its
   children), in batches: lock FOR UPDATE SKIP LOCKED, check again under the lock (still marked;
   no tag; no parent and no live subject outside the batch), delete the rows and record their
   objects in one transaction; then drain those objects.
3. Sweep blobs likewise: deleted only if still marked and no manifest references them at all.

Pushes reference rows FOR KEY SHARE inside the transaction that writes the reference
(registry/locks.py), so a row GC has locked cannot gain a reference, and a row a push has
locked is skipped. The marks only implement the grace period; safety comes from the locks and
the re-check. A dry run performs the same steps in a transaction it rolls back, reading instead
of deleting, and lists what would go; `gc_preview` is that dry run without a job run (the
dashboard's "what would be freed", docs/decisions/0032).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.locks import advisory_lock, advisory_xact_lock_within, advisory_xact_locks
from gateway.registry.models import JobRun
from gateway.registry.services.deletions import deleted_objects_prune
from gateway.registry.services.gc_mark import gc_mark
from gateway.registry.services.gc_sweep import Budget, GcReport, GcSettings, blobs_sweep, manifests_sweep, objects_drain
from gateway.registry.services.jobruns import jobrun_claim, jobrun_record, jobrun_to_completion
from gateway.registry.stores import store_for

log = logging.getLogger(__name__)

KIND_GC = "gc"
# How long a preview waits for a real run of the tenant's GC to finish before it answers "busy" (report.busy).
PREVIEW_WAIT_MS = 2000

__all__ = ["KIND_GC", "GcReport", "GcSettings", "gc_mark", "gc_preview", "gc_run", "gc_run_to_completion", "gc_tenant_ids"]


class _DryRunRollback(Exception):
    pass


def gc_run(
    *,
    tenant: Tenant,
    dry_run: bool = False,
    job_id: int | None = None,
    grace: timedelta | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    task_id: str = "",
) -> GcReport | None:
    """One bounded invocation of the tenant's GC (drain, mark, sweep manifests, sweep blobs); None if another worker holds it.

    Idempotent and resumable: every step re-reads the database, rows go in transactions that
    also record their objects, and objects go only after one more check; `done` False means
    the batch budget ran out and a continuation (same `job_id`) should follow.
    """
    cfg = _settings(grace=grace, batch_size=batch_size, max_batches=max_batches)
    store = store_for(tenant)
    with jobrun_claim(kind=KIND_GC, tenant=tenant, dry_run=dry_run, job_id=job_id, task_id=task_id) as job:
        if job is None:
            return None
        dry_run = dry_run or job.dry_run  # a run started as a dry run (through the API) stays one, whatever its task says
        report = GcReport(
            tenant=tenant.slug, bucket=store.bucket, dry_run=dry_run, grace_seconds=int(cfg.grace.total_seconds()), job_id=job.pk
        )
        if dry_run:
            _dry_steps(tenant=tenant, cfg=cfg, report=report, wait_ms=None)
            report.done = True
            jobrun_record(run=job, counts=report.counts, bytes_freed=report.bytes_freed)
            report.close(job)
            return report
        # A continuation of a chain skips the mark: its marks are already in place.
        mark = not (job.counts or {}).get("mark_passes")
        with advisory_lock(rows_lock_name(tenant), wait=True):  # after any preview in flight (its marks lock rows)
            report.done = _gc_steps(tenant=tenant, cfg=cfg, report=report, job=job, mark=mark)
        report.close(job)
        log.info("gc %s: %s", tenant.slug, report.counts, extra={"tenant": tenant.slug, "job_id": job.pk, "done": report.done})
        return report


def _settings(*, grace: timedelta | None, batch_size: int | None, max_batches: int | None) -> GcSettings:
    """The knobs of a run: the settings, overridden where given; ValueError for values a run cannot use."""
    base = GcSettings.current()
    cfg = GcSettings(
        grace=base.grace if grace is None else grace,
        batch_size=base.batch_size if batch_size is None else batch_size,
        max_batches=base.max_batches if max_batches is None else max_batches,
        upload_idle_timeout=base.upload_idle_timeout,
    )
    if cfg.grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {cfg.grace}")
    if not 1 <= cfg.batch_size <= 1000:
        raise ValueError(
            f"batch_size must be between 1 and 1000 (Storj deletes at most 1000 keys per request), got {cfg.batch_size}"
        )
    if cfg.max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {cfg.max_batches}")
    return cfg


def rows_lock_name(tenant: Tenant) -> str:
    """The lock a real run holds while it marks and sweeps, and a dry run while its marks (UPDATEs, rolled back) lock rows.

    A real run skips rows another transaction has locked (a push's, by design): without this lock it
    would skip the rows a preview happens to be marking and free nothing of them (seen: the dashboard's
    GC page, reloaded right after "Run now").
    """
    return f"gc:rows:{tenant.pk}"


def _dry_steps(*, tenant: Tenant, cfg: GcSettings, report: GcReport, wait_ms: int | None) -> bool:
    """The real run's steps (mark, sweep manifests, sweep blobs) in a transaction rolled back: lists what would go; True if it saw every candidate.

    It first takes the tenant's rows lock, waiting `wait_ms` at most (None: as long as it takes); if
    a real run holds it that long, `report.busy` is set and nothing is looked at.
    """
    done = False
    try:
        with transaction.atomic():
            if wait_ms is None:
                advisory_xact_locks([rows_lock_name(tenant)])
            elif not advisory_xact_lock_within(rows_lock_name(tenant), wait_ms=wait_ms):
                report.busy = True
                raise _DryRunRollback
            done = _gc_steps(tenant=tenant, cfg=cfg, report=report, job=None, mark=True)
            raise _DryRunRollback
    except _DryRunRollback:
        pass
    return done


def gc_preview(*, tenant: Tenant, grace: timedelta | None = None) -> GcReport:
    """What a GC of the tenant started now would delete, with `grace` (default: the setting; zero: once the grace period is over).

    The same selection as `gc_run` (its dry run: mark, then both sweeps, in a transaction
    rolled back), but read-only in effect: no JobRun row, no job lock, no audit entry; rows a
    push holds are skipped as the run would skip them. `done` False means the batch budget ran
    out before every candidate was looked at (the figures are then a floor), or, with `busy`, that
    a real run of the tenant's GC is going on (nothing was looked at: ask again when it is done).
    """
    cfg = _settings(grace=grace, batch_size=None, max_batches=None)
    report = GcReport(
        tenant=tenant.slug, bucket=store_for(tenant).bucket, dry_run=True, grace_seconds=int(cfg.grace.total_seconds())
    )
    report.done = _dry_steps(tenant=tenant, cfg=cfg, report=report, wait_ms=PREVIEW_WAIT_MS)
    return report


def _gc_steps(*, tenant: Tenant, cfg: GcSettings, report: GcReport, job: JobRun | None, mark: bool) -> bool:
    budget = Budget(cfg.max_batches)
    if not report.dry_run:
        # Objects of rows a killed run deleted but could not delete from the bucket.
        objects_drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)
        if pruned := deleted_objects_prune(tenant=tenant):
            report.add(ledger_rows_pruned=pruned)
    now = timezone.now()
    if mark:
        started = time.monotonic()
        counts = gc_mark(tenant=tenant, now=now)
        counts["mark_passes"] = 1
        report.add(**counts)
        report.seconds["mark"] = round(time.monotonic() - started, 3)
        if job is not None:
            jobrun_record(run=job, counts=counts)
    cutoff = now - cfg.grace
    started = time.monotonic()
    gone: set[int] = set()  # dry run: manifests counted as deleted in this invocation
    done = manifests_sweep(tenant=tenant, cutoff=cutoff, cfg=cfg, budget=budget, report=report, job=job, gone=gone)
    report.seconds["manifests"] = round(time.monotonic() - started, 3)
    if done:
        started = time.monotonic()
        done = blobs_sweep(tenant=tenant, cutoff=cutoff, cfg=cfg, budget=budget, report=report, job=job, gone_manifests=gone)
        report.seconds["blobs"] = round(time.monotonic() - started, 3)
    if done and not report.dry_run:
        done = objects_drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)
    return done


def gc_run_to_completion(
    *, tenant: Tenant, dry_run: bool = False, grace: timedelta | None = None, batch_size: int | None = None
) -> GcReport | None:
    """Run the tenant's GC invocation after invocation (same code as the task chain) until done; None if another worker holds it."""
    return jobrun_to_completion(
        lambda job_id=None: gc_run(tenant=tenant, dry_run=dry_run, job_id=job_id, grace=grace, batch_size=batch_size),
        GcReport.merged,
    )


def gc_tenant_ids(*, after_id: int, limit: int) -> list[int]:
    """Ids of tenants after `after_id` (ascending, at most `limit`): the fan-out's cursor; a tenant being deleted is its purge's alone."""
    tenants = Tenant.objects.filter(pk__gt=after_id).exclude(status=Tenant.Status.DELETING)
    return list(tenants.order_by("pk").values_list("pk", flat=True)[:limit])
