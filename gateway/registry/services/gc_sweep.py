"""GC's sweep: delete marked manifests, then blobs, in batches under row locks, rows before objects (decisions/0007).

Each batch locks its rows FOR UPDATE SKIP LOCKED, checks again under the lock what could keep
a row, deletes the rows and records their objects in one transaction, then drains the objects.
The knobs (`GcSettings`) and the report (`GcReport`) live here too: the sweep is what fills them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError, QuerySet

from accounts.models import Tenant
from gateway.registry import locks
from gateway.registry.models import Blob, JobRun, Manifest, ManifestBlob, ManifestChild, ObjectDeletion, RepositoryBlob, Tag
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.jobruns import JobReport, job_error, jobrun_record
from gateway.storage import keys

log = logging.getLogger(__name__)

LISTED_MAX = 1000  # entries a dry run lists per kind (the counts are complete)


@dataclass(frozen=True)
class GcSettings:
    """The GC knobs (settings.GATEWAY_GC_* and the upload idle timeout), read when a run starts."""

    grace: timedelta
    batch_size: int
    max_batches: int
    upload_idle_timeout: timedelta

    @classmethod
    def current(cls) -> GcSettings:
        """The values in Django settings now (tests override them there)."""
        return cls(
            grace=timedelta(seconds=int(settings.GATEWAY_GC_GRACE_SECONDS)),
            batch_size=int(settings.GATEWAY_GC_BATCH_SIZE),
            max_batches=int(settings.GATEWAY_GC_MAX_BATCHES),
            upload_idle_timeout=timedelta(seconds=int(settings.GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS)),
        )


@dataclass(kw_only=True)
class GcReport(JobReport):
    """What one `gc_run` invocation did (or, dry run, would do)."""

    tenant: str
    bucket: str
    dry_run: bool
    grace_seconds: int
    bytes_freed: int = 0
    busy: bool = False  # a preview that found a real run going on (gc.gc_preview): nothing looked at
    seconds: dict[str, float] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would go
    blobs: list[dict[str, Any]] = field(default_factory=list)

    def merged(self, later: GcReport) -> GcReport:
        super().merged(later)
        self.bytes_freed += later.bytes_freed
        for phase, secs in later.seconds.items():
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + secs, 3)
        return self

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.dry_run:
            out.pop("manifests")
            out.pop("blobs")
        return out


class Budget:
    """The batches one invocation may still spend."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def _manifests_deletable(
    *, tenant: Tenant, rows: list[Manifest], cutoff: datetime, lock: bool, gone: set[int]
) -> tuple[list[Manifest], int]:
    """Of candidate manifests (locked by the caller when `lock`), those nothing keeps: (deletable, kept by the check).

    Kept: not marked at or before `cutoff` any more; tagged; a child of an index outside the
    deletable set; a referrer whose subject exists outside it and is live or held by a push.
    `gone` holds ids a dry run has already counted as deleted.
    """
    doomed = {m.pk: m for m in rows if m.gc_candidate_since is not None and m.gc_candidate_since <= cutoff}
    if doomed:
        for mid in Tag.objects.filter(manifest_id__in=list(doomed)).values_list("manifest_id", flat=True):
            doomed.pop(mid, None)
    parents: dict[int, set[int]] = {}
    for parent, child in ManifestChild.objects.filter(child_id__in=list(doomed)).values_list("parent_id", "child_id"):
        if parent not in gone:
            parents.setdefault(child, set()).add(parent)
    subjects: dict[tuple[int, str], Manifest] = {}
    held_by_others: set[int] = set()
    wanted = {(m.repository_id, m.subject_digest) for m in doomed.values() if m.subject_digest}
    if wanted:
        repo_ids = sorted({r for r, _ in wanted})
        digests = sorted({d for _, d in wanted})
        qs = Manifest.objects.filter(tenant=tenant, repository_id__in=repo_ids, digest__in=digests).exclude(pk__in=gone)
        present = {
            m.pk: m
            for m in qs.only("id", "digest", "repository_id", "gc_candidate_since")
            if (m.repository_id, m.digest) in wanted
        }
        if lock and present:
            # FOR UPDATE on the subject too: no push can make it live (tag, index, re-push) until we commit.
            lockable = {
                m.pk
                for m in Manifest.objects.select_for_update(skip_locked=True)
                .filter(pk__in=sorted(present))
                .order_by("pk")
                .only("id")
            }
            held_by_others = set(present) - lockable
            # What the rows say now that we hold them.
            for m in Manifest.objects.filter(pk__in=sorted(lockable)).only("id", "digest", "repository_id", "gc_candidate_since"):
                present[m.pk] = m
        subjects = {(m.repository_id, m.digest): m for m in present.values()}
    changed = True
    while changed:
        changed = False
        for mid, m in list(doomed.items()):
            keep = any(p not in doomed for p in parents.get(mid, ()))
            if not keep and m.subject_digest:
                s = subjects.get((m.repository_id, m.subject_digest))
                if s is not None and s.pk not in doomed:
                    s_eligible = s.gc_candidate_since is not None and s.gc_candidate_since <= cutoff
                    keep = s.pk in held_by_others or not s_eligible
            if keep:
                del doomed[mid]
                changed = True
    deletable = [m for m in rows if m.pk in doomed]
    return deletable, len(rows) - len(deletable)


def _blobs_deletable(*, rows: list[Blob], cutoff: datetime, gone_manifests: set[int]) -> tuple[list[Blob], int]:
    """Of candidate blobs (locked by the caller), those still marked at or before `cutoff` that no manifest references."""
    doomed = {b.pk: b for b in rows if b.gc_candidate_since is not None and b.gc_candidate_since <= cutoff}
    if doomed:
        refs = ManifestBlob.objects.filter(blob_id__in=list(doomed))
        if gone_manifests:
            refs = refs.exclude(manifest_id__in=gone_manifests)
        for bid in refs.values_list("blob_id", flat=True).distinct():
            doomed.pop(bid, None)
    deletable = [b for b in rows if b.pk in doomed]
    return deletable, len(rows) - len(deletable)


class _Candidates:
    """Batches of candidate ids in `order` ("pk" or "-pk"), by keyset over `qs`, one budget unit each.

    `exhausted` tells, once iteration ends, whether every candidate was seen (else the budget ran out).
    """

    def __init__(self, qs: QuerySet[Any], order: str, size: int, budget: Budget) -> None:
        self.qs, self.order, self.size, self.budget = qs, order, size, budget
        self.exhausted = False

    def __iter__(self) -> Iterator[list[int]]:
        after: int | None = None
        while True:
            page = self.qs if after is None else self.qs.filter(**{"pk__lt" if self.order == "-pk" else "pk__gt": after})
            ids = list(page.order_by(self.order).values_list("pk", flat=True)[: self.size])
            if not ids:
                self.exhausted = True
                return
            if not self.budget.take():
                return
            after = ids[-1]
            yield ids


def manifests_sweep(
    *, tenant: Tenant, cutoff: datetime, cfg: GcSettings, budget: Budget, report: GcReport, job: JobRun | None, gone: set[int]
) -> bool:
    """Delete eligible manifests newest first (an index before its children); True when none is left to look at."""
    dry = report.dry_run
    # A repository being deleted is its deletion job's (its objects are keyed by the name it had, services/repository_delete.py).
    candidates = Manifest.objects.filter(tenant=tenant, gc_candidate_since__lte=cutoff, repository__deleted_name="")
    cursor = _Candidates(candidates, "-pk", cfg.batch_size, budget)
    for ids in cursor:
        with transaction.atomic():
            if dry:
                rows = list(
                    Manifest.objects.filter(pk__in=ids)
                    .select_related("repository")
                    .only(
                        "id",
                        "digest",
                        "size",
                        "subject_digest",
                        "gc_candidate_since",
                        "tenant_id",
                        "repository_id",
                        "repository__name",
                    )
                    .order_by("pk")
                )
            else:
                rows = locks.manifests_for_delete(tenant=tenant, ids=ids)
            skipped = len(ids) - len(rows)
            doomed, kept = _manifests_deletable(tenant=tenant, rows=rows, cutoff=cutoff, lock=not dry, gone=gone)
            if (
                doomed
                and not dry
                and not _delete_rows(report, job, "manifests", lambda doomed=doomed: _manifests_delete(tenant, doomed))
            ):
                doomed = []
            freed = sum(m.size for m in doomed)
        if dry:
            # Deleted rows are gone from the database; a dry run has to remember what it counted.
            gone |= {m.pk for m in doomed}
        if dry:
            room = LISTED_MAX - len(report.manifests)
            report.manifests += [
                {"repository": m.repository.name, "digest": m.digest, "size": m.size} for m in doomed[: max(room, 0)]
            ]
        batch = {"manifests_deleted": len(doomed), "manifests_kept": kept, "manifests_skipped_locked": skipped}
        _batch_done(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job, batch=batch, freed=freed)
    return cursor.exhausted


def _delete_rows(report: GcReport, job: JobRun | None, what: str, delete: Any) -> bool:
    """Run `delete` in a savepoint; a row something still protects (a foreign key we did not foresee) keeps the batch."""
    try:
        with transaction.atomic():
            delete()
        return True
    except ProtectedError as exc:
        # When in doubt, keep: log and count it, delete nothing of this batch.
        error = job_error(f"kept a batch of {what}: still referenced ({exc.args[0] if exc.args else exc})")
        log.warning("gc: %s", error["error"])
        report.errors.append(error)
        if job is not None:
            jobrun_record(run=job, counts={f"{what}_protected": 1}, errors=[error])
        return False


def _manifests_delete(tenant: Tenant, doomed: list[Manifest]) -> None:
    pks = [m.pk for m in doomed]
    ManifestChild.objects.filter(parent_id__in=pks).delete()
    ManifestBlob.objects.filter(manifest_id__in=pks).delete()
    Manifest.objects.filter(pk__in=pks).only("id").delete()
    object_deletions_record(
        tenant=tenant,
        items=[
            DeletionItem.manifest(
                tenant_id=tenant.pk, repository=m.repository.name, digest=m.digest, size=m.size, created_at=m.created_at
            )
            for m in doomed
        ],
    )


def _blobs_delete(tenant: Tenant, doomed: list[Blob]) -> None:
    pks = [b.pk for b in doomed]
    RepositoryBlob.objects.filter(blob_id__in=pks).delete()
    Blob.objects.filter(pk__in=pks).delete()
    items: list[DeletionItem] = []
    for b in doomed:
        items.append(DeletionItem(ObjectDeletion.Kind.DATA, b.storage_key, "", b.digest, b.size, b.created_at))
        index_size = keys.blob_index_size(b.digest, b.size, b.storage_key)
        index_key = keys.blob_index_key(tenant.pk, b.digest)
        items.append(DeletionItem(ObjectDeletion.Kind.INDEX, index_key, "", b.digest, index_size, b.created_at))
    object_deletions_record(tenant=tenant, items=items)


def blobs_sweep(
    *,
    tenant: Tenant,
    cutoff: datetime,
    cfg: GcSettings,
    budget: Budget,
    report: GcReport,
    job: JobRun | None,
    gone_manifests: set[int],
) -> bool:
    """Delete eligible blobs (rows, then objects); True when none is left to look at."""
    dry = report.dry_run
    cursor = _Candidates(Blob.objects.filter(tenant=tenant, gc_candidate_since__lte=cutoff), "pk", cfg.batch_size, budget)
    for ids in cursor:
        with transaction.atomic():
            if dry:
                rows = list(Blob.objects.filter(pk__in=ids).order_by("pk"))
            else:
                rows = locks.blobs_for_delete(tenant=tenant, ids=ids)
            skipped = len(ids) - len(rows)
            doomed, kept = _blobs_deletable(rows=rows, cutoff=cutoff, gone_manifests=gone_manifests)
            if doomed and not dry and not _delete_rows(report, job, "blobs", lambda doomed=doomed: _blobs_delete(tenant, doomed)):
                doomed = []
            freed = sum(b.size for b in doomed)
        if dry:
            room = LISTED_MAX - len(report.blobs)
            report.blobs += [{"digest": b.digest, "size": b.size} for b in doomed[: max(room, 0)]]
        batch = {"blobs_deleted": len(doomed), "blobs_kept": kept, "blobs_skipped_locked": skipped}
        _batch_done(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job, batch=batch, freed=freed)
    return cursor.exhausted


def _batch_done(
    *, tenant: Tenant, cfg: GcSettings, budget: Budget, report: GcReport, job: JobRun | None, batch: dict[str, int], freed: int
) -> None:
    """Count a swept batch on the report and (not a dry run) the job run, then drain the objects its rows left."""
    report.add(**batch)
    report.bytes_freed += freed
    if report.dry_run:
        return
    if job is not None:
        jobrun_record(run=job, counts=batch, bytes_freed=freed)
    objects_drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)


def objects_drain(*, tenant: Tenant, cfg: GcSettings, budget: Budget, report: GcReport, job: JobRun | None) -> bool:
    """Drain recorded object deletions, one budget unit per batch that found work; True when none is left."""
    started = time.monotonic()
    deleted = kept = 0
    done = False
    while budget.left > 0:
        d, k, done = object_deletions_drain(tenant=tenant, batch_size=cfg.batch_size, max_batches=1)
        deleted += d
        kept += k
        if d or k:
            budget.take()
        if done:
            break
    if deleted or kept:
        report.add(objects_deleted=deleted, objects_kept=kept)
        if job is not None:
            jobrun_record(run=job, counts={"objects_deleted": deleted, "objects_kept": kept})
    report.seconds["drain"] = round(report.seconds.get("drain", 0.0) + time.monotonic() - started, 3)
    return done
