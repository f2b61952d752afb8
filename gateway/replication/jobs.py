"""JobRun bookkeeping for audit and replication runs: start, heartbeat with counts, finish, supersede.

A run is one row of gateway.registry.models.JobRun. A periodic run that re-queues itself
carries the row's id along, so one row covers all its batches. A worker killed mid-run leaves
the row `running` with an old heartbeat; the next run of the same kind, and in any case the
periodic `jobruns_close_stale` (every kind: GC, retention, uploads, audit, replication), marks
it failed ("abandoned") once its heartbeat is older than GATEWAY_JOB_STALE_SECONDS — the work
itself needs no recovery, it is per object and idempotent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import transaction
from django.utils import timezone

from gateway.registry.models import JobRun
from gateway.replication.conf import app_settings

MAX_ERRORS = 100
CLOSE_BATCH = 500


def jobruns_close_stale(*, kind: str | None = None, limit: int = CLOSE_BATCH) -> int:
    """Mark running JobRuns (of `kind`, or all) without a heartbeat for GATEWAY_JOB_STALE_SECONDS failed; returns how many.

    Idempotent: each row is closed by a conditional UPDATE (still running, heartbeat still old),
    so a run that beats again meanwhile, or a concurrent closer, is left alone.
    """
    stale = timezone.now() - app_settings.job_stale_after
    candidates = JobRun.objects.filter(state=JobRun.State.RUNNING, heartbeat_at__lt=stale)
    if kind is not None:
        candidates = candidates.filter(kind=kind)
    closed = 0
    for run in candidates.order_by("pk")[:limit]:
        closed += JobRun.objects.filter(pk=run.pk, state=JobRun.State.RUNNING, heartbeat_at=run.heartbeat_at).update(
            state=JobRun.State.FAILED, finished_at=timezone.now(),
            errors=[*run.errors, {"error": f"abandoned: no heartbeat since {run.heartbeat_at.isoformat()}"}][-MAX_ERRORS:],
        )
    return closed


def jobrun_start(*, kind: str, tenant_id: int | None, task_id: str = "") -> JobRun:
    """A new running JobRun; older runs of this kind whose heartbeat stopped are marked failed."""
    jobruns_close_stale(kind=kind)
    return JobRun.objects.create(kind=kind, tenant_id=tenant_id, task_id=(task_id or "")[:64])


def jobrun_get_running(*, run_id: int, kind: str) -> JobRun | None:
    """The run to continue (a re-queued batch), if it is still running."""
    return JobRun.objects.filter(pk=run_id, kind=kind, state=JobRun.State.RUNNING).first()


def jobrun_record(*, run: JobRun, counts: Counter[str] | dict[str, int], errors: list[dict[str, Any]] | None = None) -> None:
    """Add counts and errors to the run and beat its heart (row-locked: concurrent batches add up)."""
    with transaction.atomic():
        locked = JobRun.objects.select_for_update().get(pk=run.pk)
        merged = Counter(locked.counts or {})
        merged.update({k: v for k, v in counts.items() if v})
        locked.counts = dict(sorted(merged.items()))
        if errors:
            locked.errors = [*(locked.errors or []), *errors][-MAX_ERRORS:]
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["counts", "errors", "heartbeat_at"])
    run.counts, run.errors, run.heartbeat_at = locked.counts, locked.errors, locked.heartbeat_at


def jobrun_finish(*, run: JobRun, failed: bool = False, error: str = "") -> None:
    """Close the run as succeeded or failed (with the error that stopped it)."""
    fields: dict[str, Any] = {
        "state": JobRun.State.FAILED if failed else JobRun.State.SUCCEEDED,
        "finished_at": timezone.now(),
        "heartbeat_at": timezone.now(),
    }
    if error:
        run.refresh_from_db(fields=["errors"])
        fields["errors"] = [*(run.errors or []), {"error": error[:1000]}][-MAX_ERRORS:]
    JobRun.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
