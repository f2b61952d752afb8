"""The replication sweep: backfill objects that have no replica row, copy (or queue) what is due, re-verify replicas.

One bounded pass per invocation, a JobRun of kind "replication" across its invocations; every
step works on rows by conditional UPDATE, so overlapping sweeps, retries and a killed worker
are harmless (decisions/0008).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from gateway.registry.models import Blob, JobRun, Manifest
from gateway.registry.services.jobruns import RunResult, job_error, jobrun_finish, jobrun_get_running, jobrun_record, jobrun_start
from gateway.replication.conf import app_settings
from gateway.replication.models import ObjectKind, ObjectReplica, TenantReplication
from gateway.replication.ratelimit import RequestPacer
from gateway.replication.services import RETRYABLE, State, replica_replicate, replica_verify
from gateway.storage import StorageError, keys

JOB_KIND = "replication"
# A sweep that queued a row leaves it alone this long (the task normally runs well before).
QUEUED_GRACE = timedelta(minutes=10)


@dataclass
class SweepResult(RunResult):
    """What one `replication_sweep` invocation did."""

    def as_dict(self) -> dict[str, Any]:
        return {**self.run_dict(), "errors": self.run.errors, "more": self.more}


def _backfill(*, config: TenantReplication, limit: int) -> tuple[int, bool]:
    """Create pending rows for the tenant's blobs and manifests that have none on its target: (rows, more left)."""
    has_row = ObjectReplica.objects.filter(target_id=config.target_id, tenant_id=config.tenant_id, digest=OuterRef("digest"))
    blobs = list(
        Blob.objects.filter(tenant_id=config.tenant_id)
        .filter(~Exists(has_row.filter(kind=ObjectKind.BLOB)))
        .order_by("pk")[:limit]
    )
    manifests = list(
        Manifest.objects.filter(tenant_id=config.tenant_id)
        .filter(~Exists(has_row.filter(kind=ObjectKind.MANIFEST)))
        .select_related("repository")
        .order_by("digest", "pk")
        .distinct("digest")[:limit]
    )
    rows = [
        ObjectReplica(
            tenant_id=config.tenant_id,
            target_id=config.target_id,
            kind=ObjectKind.BLOB,
            digest=b.digest,
            size=b.size,
            source_key=b.storage_key,
            pending_since=b.created_at,
        )
        for b in blobs
    ] + [
        ObjectReplica(
            tenant_id=config.tenant_id,
            target_id=config.target_id,
            kind=ObjectKind.MANIFEST,
            digest=m.digest,
            size=m.size,
            source_key=keys.manifest_key(m.tenant_id, m.repository.name, m.digest),
            pending_since=m.created_at,
        )
        for m in manifests
    ]
    if rows:
        ObjectReplica.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows), max(len(blobs), len(manifests)) == limit


def _enabled(qs: Any) -> Any:
    """Rows of tenants that replicate to this row's target now."""
    current = TenantReplication.objects.filter(
        tenant_id=OuterRef("tenant_id"), target_id=OuterRef("target_id"), enabled=True, target__enabled=True
    )
    return qs.filter(Exists(current))


def _backfill_all(*, tenant_id: int | None, size: int, counts: Counter[str]) -> bool:
    """Backfill every replicating tenant (or just `tenant_id`); True if any had more left."""
    configs = TenantReplication.objects.filter(enabled=True, target__enabled=True).order_by("pk")
    if tenant_id is not None:
        configs = configs.filter(tenant_id=tenant_id)
    more = False
    for config in configs:
        added, full = _backfill(config=config, limit=size)
        counts["backfilled"] += added
        more |= full
    return more


def _due_ids(*, run: JobRun, tenant_id: int | None, force: bool, size: int, now: datetime) -> list[int]:
    """Replica rows due a copy attempt, oldest wait first; `force` also takes rows past their backoff or attempt limit, once per run."""
    due = _enabled(ObjectReplica.objects.filter(state__in=RETRYABLE).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)))
    if tenant_id is not None:
        due = due.filter(tenant_id=tenant_id)
    if force:  # each row at most once per run: not yet tried, or last touched before the run began
        due = due.filter(Q(attempts=0) | Q(updated_at__lt=run.started_at))
    else:
        due = due.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), attempts__lt=app_settings.replication_max_attempts
        )
    return list(due.order_by(F("pending_since").asc(nulls_first=True), "pk").values_list("pk", flat=True)[:size])


def _verify_ids(*, tenant_id: int | None, size: int, now: datetime) -> list[int]:
    """Replicated rows not verified for an audit interval, least recently verified first."""
    verify = _enabled(ObjectReplica.objects.filter(state=State.REPLICATED)).filter(
        Q(verified_at__isnull=True) | Q(verified_at__lt=now - app_settings.audit_interval)
    )
    if tenant_id is not None:
        verify = verify.filter(tenant_id=tenant_id)
    return list(verify.order_by(F("verified_at").asc(nulls_first=True), "pk").values_list("pk", flat=True)[:size])


def _verify_outcome(*, replica_id: int, deep: bool, pacer: RequestPacer) -> str:
    """A verify outcome as the sweep counts it (`verify_ok`, `verify_repaired`, …)."""
    return "verify_" + replica_verify(replica_id=replica_id, deep=deep, pacer=pacer)


def _counted(counts: Counter[str], errors: list[dict[str, Any]], pk: int, step: Callable[[], str]) -> None:
    """Count one replica's outcome; a storage failure is counted and recorded, and the sweep goes on."""
    try:
        counts[step()] += 1
    except StorageError as exc:
        counts["errors"] += 1
        errors.append(job_error(str(exc), replica_id=pk))


def replication_sweep(
    *,
    tenant_id: int | None = None,
    sync: bool = False,
    force: bool = False,
    batch_size: int | None = None,
    run_id: int | None = None,
    task_id: str = "",
    queue: str | None = None,
) -> SweepResult:
    """One bounded pass: backfill missing rows, copy (sync) or queue (async) what is due, verify replicas due a check.

    `force` (the operator command) also retries rows past their backoff or attempt limit, each
    at most once per run. Async copies go to `queue` (default: the task's own). The JobRun
    (kind "replication") is finished unless `more` is returned; pass its id back as `run_id`.
    """
    size = app_settings.replication_batch_size if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    run = jobrun_get_running(run_id=run_id, kind=JOB_KIND) if run_id else None
    if run is None:
        run = jobrun_start(kind=JOB_KIND, tenant_id=tenant_id, task_id=task_id)
    result = SweepResult(run=run)
    counts: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    pacer = RequestPacer(app_settings.job_requests_per_second)
    now = timezone.now()
    try:
        result.more |= _backfill_all(tenant_id=tenant_id, size=size, counts=counts)
        due_ids = _due_ids(run=run, tenant_id=tenant_id, force=force, size=size, now=now)
        result.more |= len(due_ids) == size
        if sync:
            for pk in due_ids:
                _counted(counts, errors, pk, partial(replica_replicate, replica_id=pk, pacer=pacer))
        else:
            from gateway.replication.tasks import replicate_object_task

            ObjectReplica.objects.filter(pk__in=due_ids).update(next_attempt_at=now + QUEUED_GRACE, updated_at=now)
            for pk in due_ids:
                replicate_object_task.apply_async(kwargs={"replica_id": pk}, queue=queue)
            counts["queued"] += len(due_ids)
        verify_ids = _verify_ids(tenant_id=tenant_id, size=size, now=now)
        result.more |= len(verify_ids) == size
        rate = app_settings.audit_sample_rate
        for pk in verify_ids:
            deep = rate > 0 and random.random() < rate
            _counted(counts, errors, pk, partial(_verify_outcome, replica_id=pk, deep=deep, pacer=pacer))
    except Exception as exc:
        jobrun_record(run=run, counts=counts, errors=errors)
        jobrun_finish(run=run, failed=True, error=f"{type(exc).__name__}: {exc}")
        raise
    jobrun_record(run=run, counts=counts, errors=errors)
    result.counts = counts
    if not result.more:
        jobrun_finish(run=run)
    result.run.refresh_from_db()
    return result
