"""The integrity audit ("replication check") of the primary bucket, and repair.

Tiers (docs/storj.md §11):

1. Cheap, every object, no egress: HEAD each blob data object and manifest object for
   existence, size and ETag. The ETag seen while an object was good is kept; a different
   one later means the object was rewritten, so it is re-hashed at once.
2. Deep, sampled: download and re-hash (with the digest's algorithm, sha256 or sha512) a `sample_rate` share of
   the checked objects within a per-run egress budget, plus every flagged object (a previous
   problem, a changed ETag, or a replica copy that read corrupt bytes), whatever its size.

A missing, wrong-size or corrupt object is repaired at once where a verified source exists:
for a manifest, its exact bytes in PostgreSQL (no egress) or else a replica; for a blob, a
replica. The repair streams into the same primary key and is completed only if the digest
matches. Each new problem is reported to the tenant's admins (audit log `integrity.problem`
and webhook `integrity.problem`, with the repair outcome); an unrepaired object stays flagged
and is not reported again until its status changes.

Cadence: periodic runs take the least recently checked objects that are due (last checked
more than GATEWAY_AUDIT_INTERVAL_HOURS ago; flagged first), in leased batches, so each object
is HEADed about once per interval and the checks spread over the day. A full run (the `audit`
command) uses "not checked since this run started" as its due line instead, which also makes
it resumable. Every run is a JobRun (kind "audit").
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.services import SYSTEM_ACTOR, audit_record
from gateway.registry.models import Blob, Manifest
from gateway.registry.services.jobruns import RunResult, jobrun_finish, jobrun_get_running, jobrun_record, jobrun_start
from gateway.registry.stores import store_for
from gateway.replication import locks
from gateway.replication.conf import app_settings
from gateway.replication.models import ObjectAudit, ObjectKind
from gateway.replication.ratelimit import RequestPacer
from gateway.replication.repair import Expected, object_repair
from gateway.replication.reporting import problem_report
from gateway.replication.transfer import SourceMissing, rehash
from gateway.storage import BlobStore, StorageUnavailable, keys

log = logging.getLogger(__name__)

JOB_KIND = "audit"
Status = ObjectAudit.Status


@dataclass
class AuditResult(RunResult):
    """What one `integrity_audit` invocation checked and found."""

    findings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.run_dict(),
            "findings": [e for e in self.run.errors if "status" in e],
            "errors": [e for e in self.run.errors if "status" not in e],
            "more": self.more,
        }


@dataclass
class _Budget:
    remaining: int

    def take(self, size: int, *, force: bool) -> bool:
        if force or size <= self.remaining:
            self.remaining = max(0, self.remaining - size)
            return True
        return False


# -- seeding and flagging --------------------------------------------------------------------


def integrity_seed(*, tenant_id: int | None = None, limit: int = 1000) -> int:
    """Create audit rows (unchecked) for blobs and manifests that have none; at most `limit` of each. Idempotent."""
    blobs = Blob.objects.filter(integrity_audit__isnull=True)
    manifests = Manifest.objects.filter(integrity_audit__isnull=True).select_related("repository")
    if tenant_id is not None:
        blobs, manifests = blobs.filter(tenant_id=tenant_id), manifests.filter(tenant_id=tenant_id)
    rows = [
        ObjectAudit(tenant_id=b.tenant_id, kind=ObjectKind.BLOB, blob=b, digest=b.digest, key=b.storage_key, size=b.size)
        for b in blobs.order_by("pk")[:limit]
    ]
    rows += [
        ObjectAudit(
            tenant_id=m.tenant_id,
            kind=ObjectKind.MANIFEST,
            manifest=m,
            digest=m.digest,
            key=keys.manifest_key(m.tenant_id, m.repository.name, m.digest),
            size=m.size,
        )
        for m in manifests.order_by("pk")[:limit]
    ]
    return len(ObjectAudit.objects.bulk_create(rows, ignore_conflicts=True)) if rows else 0


def integrity_flag(*, tenant_id: int, kind: str, digest: str, reason: str) -> int:
    """Mark an object as suspicious so the next audit checks and re-hashes it first. Returns rows flagged."""
    if kind == ObjectKind.BLOB:
        missing = [
            ObjectAudit(tenant_id=tenant_id, kind=kind, blob=b, digest=digest, key=b.storage_key, size=b.size)
            for b in Blob.objects.filter(tenant_id=tenant_id, digest=digest, integrity_audit__isnull=True)
        ]
    else:
        missing = [
            ObjectAudit(
                tenant_id=tenant_id,
                kind=kind,
                manifest=m,
                digest=digest,
                key=keys.manifest_key(tenant_id, m.repository.name, digest),
                size=m.size,
            )
            for m in Manifest.objects.filter(tenant_id=tenant_id, digest=digest, integrity_audit__isnull=True).select_related(
                "repository"
            )
        ]
    if missing:
        ObjectAudit.objects.bulk_create(missing, ignore_conflicts=True)
    return ObjectAudit.objects.filter(tenant_id=tenant_id, kind=kind, digest=digest).update(
        flagged=True, last_checked_at=None, detail={"flagged": reason[:500]}, updated_at=timezone.now()
    )


# -- one object ------------------------------------------------------------------------------


def _expected(row: ObjectAudit) -> Expected | None:
    if row.kind == ObjectKind.BLOB and row.blob is not None:
        b = row.blob
        return Expected(key=b.storage_key, size=b.size, digest=b.digest, target=b.digest)
    if row.kind == ObjectKind.MANIFEST and row.manifest is not None:
        m = row.manifest
        return Expected(
            key=keys.manifest_key(m.tenant_id, m.repository.name, m.digest),
            size=m.size,
            digest=m.digest,
            target=f"{m.repository.name}@{m.digest}",
            payload=bytes(m.payload),
            media_type=m.media_type,
        )
    return None


@dataclass(frozen=True)
class _Seen:
    status: str
    detail: dict[str, Any]
    etag: str = ""
    deep: bool = False


def _inspect(
    row: ObjectAudit,
    exp: Expected,
    store: BlobStore,
    pacer: RequestPacer,
    *,
    sample_rate: float,
    budget: _Budget,
    counts: Counter[str],
) -> _Seen:
    """HEAD one object, and re-hash it when flagged, rewritten (ETag changed) or sampled within the budget."""
    pacer.acquire()
    st = store.stat(exp.key)
    counts["headed"] += 1
    if st is None:
        return _Seen(Status.MISSING, {"expected_size": exp.size})
    if st.size != exp.size:
        return _Seen(Status.SIZE_MISMATCH, {"expected_size": exp.size, "actual_size": st.size}, st.etag)
    etag_changed = bool(row.etag) and st.etag != row.etag
    if etag_changed:
        counts["etag_changed"] += 1
    must = row.flagged or etag_changed or row.status in ObjectAudit.PROBLEMS
    sampled = not must and sample_rate > 0 and random.random() < sample_rate
    if not (must or sampled):
        return _Seen(Status.OK, {}, st.etag)
    if not budget.take(exp.size, force=must):
        counts["deep_skipped_budget"] += 1
        return _Seen(Status.OK, {}, st.etag)
    try:
        hashed = rehash(store, exp.key, expected=exp.digest, pacer=pacer)
    except SourceMissing:
        return _Seen(Status.MISSING, {"expected_size": exp.size})
    counts["deep_checked"] += 1
    counts["deep_bytes"] += hashed.size
    if hashed.digest != exp.digest or hashed.size != exp.size:
        detail = {
            "expected_size": exp.size,
            "actual_size": hashed.size,
            "actual_digest": hashed.digest,
            "etag_changed": etag_changed,
        }
        return _Seen(Status.CORRUPT, detail, st.etag, deep=True)
    return _Seen(Status.OK, {"etag_changed": True} if etag_changed else {}, st.etag, deep=True)


def _report(row: ObjectAudit, exp: Expected, finding: dict[str, Any], source: str) -> None:
    """Tell the tenant's admins about a problem (audit log and webhook) and record a repair."""
    problem_report(tenant=row.tenant, action="integrity.problem", event="integrity.problem", target=exp.target, detail=finding)
    if source:
        audit_record(
            action="integrity.repair",
            actor=SYSTEM_ACTOR,
            tenant=row.tenant,
            target=exp.target,
            detail={"kind": row.kind, "digest": exp.digest, "key": exp.key, "source": source},
        )


def _problem_handle(
    row: ObjectAudit,
    exp: Expected,
    seen: _Seen,
    store: BlobStore,
    pacer: RequestPacer,
    *,
    now: datetime,
    update: dict[str, Any],
    counts: Counter[str],
) -> dict[str, Any] | None:
    """Under the object's source lock, repair a problem found, record it on the row and report it if new; returns the finding."""
    status, detail = seen.status, seen.detail
    counts[status] += 1
    previous = row.status
    with transaction.atomic():
        object_keys = [exp.key] + ([keys.blob_index_key(row.tenant_id, exp.digest)] if row.kind == ObjectKind.BLOB else [])
        if not locks.source_lock(blob_id=row.blob_id, manifest_id=row.manifest_id, object_keys=object_keys):
            ObjectAudit.objects.filter(pk=row.pk).delete()  # deleted by GC while we looked: not a problem
            counts["dropped"] += 1
            counts[status] -= 1
            return None
        source, error, etag = object_repair(row, exp, store, pacer)
        finding = {"kind": row.kind, "digest": exp.digest, "key": exp.key, "status": status, **detail}
        if source:
            counts["repaired"] += 1
            finding.update(repaired=True, repair_source=source)
            ObjectAudit.objects.filter(pk=row.pk).update(
                status=Status.REPAIRED,
                detail=finding,
                flagged=False,
                etag=etag,
                last_problem_at=now,
                repaired_at=now,
                **update,
            )
        else:
            counts["unrepaired"] += 1
            finding.update(repaired=False, repair_error=error)
            ObjectAudit.objects.filter(pk=row.pk).update(
                status=status, detail=finding, flagged=True, last_problem_at=now, **update
            )
        # Report what is new: not the same unrepaired problem again at every check.
        if source or previous != status:
            counts["reported"] += 1
            _report(row, exp, finding, source)
    log.warning(
        "integrity: %s %s %s at %s (%s)",
        row.kind,
        exp.digest,
        status,
        exp.key,
        "repaired from " + source if source else "not repaired",
    )
    return finding


def _check_one(
    row: ObjectAudit, store: BlobStore, pacer: RequestPacer, *, sample_rate: float, budget: _Budget, counts: Counter[str]
) -> dict[str, Any] | None:
    """Check one leased audit row, repair and report as needed; returns the finding, if any."""
    exp = _expected(row)
    if exp is None:  # its Blob/Manifest row is gone (GC): nothing to audit
        ObjectAudit.objects.filter(pk=row.pk).delete()
        counts["dropped"] += 1
        return None
    counts["checked"] += 1
    counts[f"checked_{row.kind}"] += 1
    seen = _inspect(row, exp, store, pacer, sample_rate=sample_rate, budget=budget, counts=counts)
    status, detail = seen.status, seen.detail
    now = timezone.now()
    update: dict[str, Any] = {
        "last_checked_at": now,
        "lease_until": None,
        "key": exp.key,
        "size": exp.size,
        "digest": exp.digest,
        "updated_at": now,
    }
    if seen.deep:
        update["last_deep_checked_at"] = now
    if status == Status.OK:
        counts["ok"] += 1
        ObjectAudit.objects.filter(pk=row.pk).update(status=Status.OK, detail=detail, flagged=False, etag=seen.etag, **update)
        return None
    return _problem_handle(row, exp, seen, store, pacer, now=now, update=update, counts=counts)


# -- runs ------------------------------------------------------------------------------------


def _audit_batch(
    result: AuditResult,
    *,
    tenant_id: int | None,
    due_before: datetime,
    size: int,
    pacer: RequestPacer,
    budget: _Budget,
    rate: float,
) -> int:
    """Seed, claim and check one batch of due objects, recording its counts and findings on the run; returns how many were claimed."""
    counts: Counter[str] = Counter()
    counts["seeded"] += integrity_seed(tenant_id=tenant_id, limit=size)
    ids = locks.audits_claim(tenant_id=tenant_id, due_before=due_before, limit=size)
    findings: list[dict[str, Any]] = []
    rows = {r.pk: r for r in ObjectAudit.objects.filter(pk__in=ids).select_related("tenant", "blob", "manifest__repository")}
    pending = list(ids)
    try:
        while pending:
            row = rows.get(pending[0])
            if row is not None:
                finding = _check_one(row, store_for(row.tenant_id), pacer, sample_rate=rate, budget=budget, counts=counts)
                if finding:
                    findings.append(finding)
            pending.pop(0)
    finally:
        locks.audits_release(ids=pending)
        jobrun_record(run=result.run, counts=counts, errors=findings)
        result.counts.update(counts)
        result.findings += findings
    return len(ids)


def integrity_audit(
    *,
    tenant_id: int | None = None,
    full: bool = False,
    sample_rate: float | None = None,
    batch_size: int | None = None,
    max_batches: int | None = 1,
    run_id: int | None = None,
    task_id: str = "",
) -> AuditResult:
    """Audit due objects in leased batches (at most `max_batches`, None = until none are due); safe to run concurrently.

    `full`: every object not checked since the run started (the operator's complete audit);
    otherwise those not checked for GATEWAY_AUDIT_INTERVAL_HOURS. Continues JobRun `run_id`
    when given. The run is finished unless `more` is returned (then the caller continues it).
    """
    rate = app_settings.audit_sample_rate if sample_rate is None else sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample_rate must be a number from 0 to 1, got {sample_rate!r}")
    size = app_settings.audit_batch_size if batch_size is None else batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive integer or None, got {max_batches!r}")

    run = jobrun_get_running(run_id=run_id, kind=JOB_KIND) if run_id else None
    if run is None:
        run = jobrun_start(kind=JOB_KIND, tenant_id=tenant_id, task_id=task_id)
    due_before: datetime = run.started_at if full else timezone.now() - app_settings.audit_interval
    pacer = RequestPacer(app_settings.job_requests_per_second)
    budget = _Budget(app_settings.audit_deep_bytes_per_run)
    result = AuditResult(run=run)
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            batches += 1
            claimed = _audit_batch(
                result, tenant_id=tenant_id, due_before=due_before, size=size, pacer=pacer, budget=budget, rate=rate
            )
            result.more = claimed == size
            if not result.more:
                break
    except StorageUnavailable as exc:
        jobrun_finish(run=run, failed=True, error=f"storage unavailable: {exc}")
        raise
    except Exception as exc:
        jobrun_finish(run=run, failed=True, error=f"{type(exc).__name__}: {exc}")
        raise
    if not result.more:
        jobrun_finish(run=run)
    result.run.refresh_from_db()
    return result
