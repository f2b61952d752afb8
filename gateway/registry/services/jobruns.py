"""The one API for the runs of every background job: GC, retention, the upload sweep, audits, replication (decisions/0015).

A run is one JobRun row. A job that re-queues itself carries the row's id along, so one row
covers all its invocations. A worker killed mid-run leaves the row `running` with an old
heartbeat: the next claim of the same kind and tenant, and in any case the periodic
`jobruns_close_stale`, closes it as failed ("abandoned"); the work itself needs no recovery,
every job is idempotent.

Errors have one shape: a dict with "error" (the message) and, where it helps, what it concerns
(`job_error`). An audit's findings (dicts with "status") share the list.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, Self, TypeVar

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.locks import advisory_lock
from gateway.registry.models import JobRun

log = logging.getLogger(__name__)

ERRORS_KEPT = 100
ERROR_CHARS = 1000
CLOSE_BATCH = 500


def job_error(message: str, **context: Any) -> dict[str, Any]:
    """The one shape of an entry of JobRun.errors: what it concerns (`context`) and "error", the message."""
    return {**context, "error": message[:ERROR_CHARS]}


def _stale_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "GATEWAY_JOB_STALE_SECONDS", 1800)))


def jobruns_close_stale(*, kind: str | None = None, limit: int = CLOSE_BATCH) -> int:
    """Mark running JobRuns (of `kind`, or all) without a heartbeat for GATEWAY_JOB_STALE_SECONDS failed; returns how many.

    Idempotent: each row is closed by a conditional UPDATE (still running, heartbeat still old),
    so a run that beats again meanwhile, or a concurrent closer, is left alone.
    """
    # A queued run whose task never arrived (its message was lost) is closed alike.
    active = (JobRun.State.RUNNING, JobRun.State.QUEUED)
    candidates = JobRun.objects.filter(state__in=active, heartbeat_at__lt=timezone.now() - _stale_after())
    if kind is not None:
        candidates = candidates.filter(kind=kind)
    closed = 0
    for run in candidates.order_by("pk")[:limit]:
        error = job_error(f"abandoned: no heartbeat since {run.heartbeat_at.isoformat()}")
        closed += JobRun.objects.filter(pk=run.pk, state=run.state, heartbeat_at=run.heartbeat_at).update(
            state=JobRun.State.FAILED,
            finished_at=timezone.now(),
            errors=[*(run.errors or []), error][-ERRORS_KEPT:],
        )
    return closed


def jobrun_start(*, kind: str, tenant_id: int | None, dry_run: bool = False, task_id: str = "") -> JobRun:
    """A new running JobRun; older runs of this kind whose heartbeat stopped are marked failed."""
    jobruns_close_stale(kind=kind)
    return JobRun.objects.create(kind=kind, tenant_id=tenant_id, dry_run=dry_run, task_id=(task_id or "")[:64])


def jobrun_get_running(*, run_id: int, kind: str) -> JobRun | None:
    """The run to continue (a re-queued invocation), if it is still running; a queued run (started through the API) starts now.

    The queued → running step is a conditional UPDATE, so two workers handed the same run start it once.
    """
    now = timezone.now()
    JobRun.objects.filter(pk=run_id, kind=kind, state=JobRun.State.QUEUED).update(
        state=JobRun.State.RUNNING, started_at=now, heartbeat_at=now
    )
    return JobRun.objects.filter(pk=run_id, kind=kind, state=JobRun.State.RUNNING).first()


def jobrun_supersede(*, run_id: int, kind: str) -> None:
    """Close a queued run whose job another worker was running for the same tenant when its task came: that run did the work."""
    error = job_error("superseded: another run of this job held the tenant when this one was to start")
    JobRun.objects.filter(pk=run_id, kind=kind, state=JobRun.State.QUEUED).update(
        state=JobRun.State.FAILED, finished_at=timezone.now(), errors=[error]
    )


@contextmanager
def jobrun_claim(
    *, kind: str, tenant: Tenant | None, dry_run: bool, job_id: int | None = None, task_id: str = ""
) -> Iterator[JobRun | None]:
    """Hold the one-at-a-time lock of (kind, tenant) and yield its JobRun (resumed or new); None when another worker holds it.

    The lock is a session advisory lock: a killed worker loses it with its connection, and the
    next run closes the JobRun it left `running` as failed ("abandoned"). An exception from
    the block marks the run failed and propagates.
    """
    tenant_id = tenant.pk if tenant else None
    with advisory_lock(f"job:{kind}:{tenant_id or 0}") as taken:
        if not taken:
            if job_id is not None:
                jobrun_supersede(run_id=job_id, kind=kind)
            yield None
            return
        job = None
        if job_id is not None:
            job = jobrun_get_running(run_id=job_id, kind=kind)
            if job is None or job.tenant_id != tenant_id:
                # Finished, or superseded by a newer run that did the rest: nothing left for this chain.
                yield None
                return
        if job is None:
            job = JobRun.objects.create(kind=kind, tenant_id=tenant_id, dry_run=dry_run, task_id=task_id[:64])
        _close_unheld(job)
        try:
            yield job
        except BaseException as exc:
            try:
                jobrun_finish(run=job, failed=True, error=f"{type(exc).__name__}: {exc}")
            except DatabaseError:
                log.exception("could not record the failure of job run %s", job.pk)
            raise


def _close_unheld(job: JobRun) -> None:
    """Close the other running runs of the job's kind and tenant: nobody holds their lock, so their worker is gone or their chain was cut."""
    now = timezone.now()
    # tenant_id None (a run of no tenant) is `IS NULL`, which the stubs do not know.
    others = JobRun.objects.filter(kind=job.kind, tenant_id=job.tenant_id, state=JobRun.State.RUNNING).exclude(pk=job.pk)  # type: ignore[misc]
    for stale in others:
        error = job_error(
            f"abandoned: stopped without finishing (last heartbeat {stale.heartbeat_at.isoformat()}); run {job.pk} took over"
        )
        stale.state, stale.finished_at = JobRun.State.FAILED, now
        stale.errors = [*(stale.errors or []), error][-ERRORS_KEPT:]
        stale.save(update_fields=["state", "finished_at", "errors"])


def _counts_merged(into: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for k, v in new.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and isinstance(out.get(k, 0), int | float):
            if v:
                out[k] = out.get(k, 0) + v
        else:
            out[k] = v
    return dict(sorted(out.items()))


def jobrun_record(
    *, run: JobRun, counts: Mapping[str, Any], bytes_freed: int = 0, errors: list[dict[str, Any]] | None = None
) -> None:
    """Add counts, freed bytes and errors to the run and beat its heart (row-locked: concurrent batches add up)."""
    with transaction.atomic():
        locked = JobRun.objects.select_for_update().get(pk=run.pk)
        locked.counts = _counts_merged(locked.counts or {}, counts)
        locked.bytes_freed = (locked.bytes_freed or 0) + bytes_freed
        if errors:
            locked.errors = [*(locked.errors or []), *errors][-ERRORS_KEPT:]
        locked.heartbeat_at = timezone.now()
        locked.save(update_fields=["counts", "bytes_freed", "errors", "heartbeat_at"])
    run.counts, run.bytes_freed, run.errors, run.heartbeat_at = (
        locked.counts,
        locked.bytes_freed,
        locked.errors,
        locked.heartbeat_at,
    )


def jobrun_finish(*, run: JobRun, failed: bool = False, error: str = "") -> None:
    """Close the run as succeeded or failed (with the error that stopped it, if any)."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "state": JobRun.State.FAILED if failed else JobRun.State.SUCCEEDED,
        "finished_at": now,
        "heartbeat_at": now,
    }
    if error:
        run.refresh_from_db(fields=["errors"])
        fields["errors"] = [*(run.errors or []), job_error(error)][-ERRORS_KEPT:]
    JobRun.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()


def jobrun_stop(*, run_id: int | None, failed: bool) -> None:
    """Close a still-running chain that hit its invocation cap (`stopped_at_cap`); the next scheduled run continues."""
    run = JobRun.objects.filter(pk=run_id, state=JobRun.State.RUNNING).first() if run_id is not None else None
    if run is None:
        return
    jobrun_record(run=run, counts={"stopped_at_cap": 1})
    jobrun_finish(run=run, failed=failed)
    log.info("job run %s stopped: invocation cap reached; the next scheduled run continues", run_id)


# -- chains: one invocation after another -----------------------------------------------------------------


class ChainedReport(Protocol):
    """What one bounded invocation of a job returns, as far as its chain cares."""

    @property
    def job_id(self) -> int | None: ...

    @property
    def failed(self) -> bool: ...

    def continuation(self) -> dict[str, Any] | None: ...


R = TypeVar("R", bound=ChainedReport)


def jobrun_chain(*, report: ChainedReport, requeues_left: int, requeue: Callable[..., None]) -> None:
    """After one invocation: queue the next (`requeue(**continuation, requeues_left=n - 1)`) or, at the cap, stop the run."""
    nxt = report.continuation()
    if nxt is None:
        return
    if requeues_left > 0:
        requeue(**nxt, requeues_left=requeues_left - 1)
    else:
        jobrun_stop(run_id=report.job_id, failed=report.failed)


def jobrun_to_completion(invoke: Callable[..., R | None], merge: Callable[[R, R], R]) -> R | None:
    """Call `invoke(**continuation)` until the job is finished, as its task chain would, merging the reports; None if held elsewhere."""
    total: R | None = None
    nxt: dict[str, Any] | None = {}
    while nxt is not None:
        report = invoke(**nxt)
        if report is None:
            return total
        total = report if total is None else merge(total, report)
        nxt = report.continuation()
    return total


@dataclass
class RunResult:
    """What one invocation of a job that may run concurrently (audit, replication sweep) returns: its run, its counts, work left."""

    run: JobRun
    counts: Counter[str] = field(default_factory=Counter)
    more: bool = False
    failed = False  # per-object problems are what these jobs report, not a failure of their run

    @property
    def job_id(self) -> int:
        return self.run.pk

    def continuation(self) -> dict[str, Any] | None:
        """The next invocation's arguments while work remains, else None."""
        return {"run_id": self.run.pk} if self.more else None

    def run_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (what every job's command prints first)."""
        run = self.run
        return {
            "run_id": run.pk,
            "kind": run.kind,
            "tenant_id": run.tenant_id,
            "state": run.state,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "counts": dict(sorted(run.counts.items())),
        }


@dataclass(kw_only=True)
class JobReport:
    """The part every maintenance report (GC, retention, upload sweep) shares: its run, whether it is done, counts, errors."""

    job_id: int | None = None
    done: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def continuation(self) -> dict[str, Any] | None:
        """The next invocation's arguments, None when the run is finished."""
        return None if self.done else {"job_id": self.job_id}

    def merged(self, later: Self) -> Self:
        """This report with a later invocation's counts added and its outcome taken (its lists, if any, are the caller's)."""
        self.add(**later.counts)
        self.done, self.errors = later.done, later.errors
        return self

    def close(self, job: JobRun) -> None:
        """End this invocation: finish the run when done (failed if it recorded errors), else beat it; take its errors."""
        if self.done:
            job.refresh_from_db(fields=["errors"])
            jobrun_finish(run=job, failed=bool(job.errors))
        else:
            jobrun_record(run=job, counts={})
        self.errors = list(job.errors or [])
