"""Online garbage collection of one tenant's storage target, while pushes continue (decisions/0007).

One invocation of `gc_run`:

0. Drain: delete the bucket objects of rows deleted earlier (`ObjectDeletion` records, left by a
   run that was killed between its COMMIT and its DeleteObjects call).
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
of deleting, and lists what would go.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.locks import advisory_lock
from gateway.registry import locks
from gateway.registry.models import (
    Blob,
    JobRun,
    Manifest,
    ManifestBlob,
    ManifestChild,
    ObjectDeletion,
    RepositoryBlob,
    Tag,
)
from gateway.registry.stores import store_for
from gateway.storage import keys

log = logging.getLogger(__name__)

KIND_GC = "gc"
LISTED_MAX = 1000  # entries a dry run lists per kind (the counts are complete)
_ERRORS_KEPT = 50


# -- settings ---------------------------------------------------------------------------------------


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


# -- job runs -------------------------------------------------------------------------------------


def _merge_counts(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for k, v in new.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and isinstance(out.get(k, 0), int | float):
            out[k] = out.get(k, 0) + v
        else:
            out[k] = v
    return out


@contextmanager
def jobrun_claim(*, kind: str, tenant: Tenant | None, dry_run: bool, job_id: int | None = None, task_id: str = "") -> Iterator[JobRun | None]:
    """Hold the one-at-a-time lock of (kind, tenant) and yield its JobRun (resumed or new); None when another worker holds it.

    The lock is a session advisory lock: a killed worker loses it with its connection, and the
    next run closes the JobRun it left `running` as failed ("abandoned"). An exception from
    the block marks the run failed and propagates.
    """
    with advisory_lock(f"job:{kind}:{tenant.pk if tenant else 0}") as taken:
        if not taken:
            yield None
            return
        now = timezone.now()
        job = None
        if job_id is not None:
            job = JobRun.objects.filter(pk=job_id, kind=kind, tenant=tenant, state=JobRun.State.RUNNING).first()
            if job is None:
                # Finished, or superseded by a newer run that did the rest: nothing left for this chain.
                yield None
                return
        if job is None:
            job = JobRun.objects.create(kind=kind, tenant=tenant, dry_run=dry_run, task_id=task_id[:64])
        for stale in JobRun.objects.filter(kind=kind, tenant=tenant, state=JobRun.State.RUNNING).exclude(pk=job.pk):
            # Nobody holds the lock for it, so its worker is gone (killed) or its chain was cut short.
            stale.state = JobRun.State.FAILED
            stale.finished_at = now
            stale.errors = (stale.errors or [])[-_ERRORS_KEPT + 1 :] + [
                f"abandoned: stopped without finishing (last heartbeat {stale.heartbeat_at.isoformat()}); run {job.pk} took over"
            ]
            stale.save(update_fields=["state", "finished_at", "errors"])
        try:
            yield job
        except BaseException as exc:
            try:
                errors = list(JobRun.objects.filter(pk=job.pk).values_list("errors", flat=True).first() or [])
                JobRun.objects.filter(pk=job.pk).update(
                    state=JobRun.State.FAILED, finished_at=timezone.now(), heartbeat_at=timezone.now(),
                    errors=(errors + [f"{type(exc).__name__}: {exc}"[:500]])[-_ERRORS_KEPT:],
                )
            except DatabaseError:
                log.exception("could not record the failure of job run %s", job.pk)
            raise


def jobrun_progress(*, job: JobRun, counts: dict[str, Any], bytes_freed: int = 0, errors: list[str] | None = None) -> None:
    """Add this batch's counts to the run and beat its heartbeat (what a killed run did stays recorded)."""
    job.counts = _merge_counts(job.counts or {}, counts)
    job.bytes_freed = (job.bytes_freed or 0) + bytes_freed
    if errors:
        job.errors = ((job.errors or []) + errors)[-_ERRORS_KEPT:]
    job.heartbeat_at = timezone.now()
    JobRun.objects.filter(pk=job.pk).update(counts=job.counts, bytes_freed=job.bytes_freed, errors=job.errors, heartbeat_at=job.heartbeat_at)


def jobrun_finish(*, job: JobRun, done: bool) -> None:
    """Close the run as succeeded (done) or failed (errors recorded); left running when a continuation is queued."""
    now = timezone.now()
    if not done:
        JobRun.objects.filter(pk=job.pk).update(heartbeat_at=now)
        return
    job.state = JobRun.State.FAILED if job.errors else JobRun.State.SUCCEEDED
    job.finished_at = now
    JobRun.objects.filter(pk=job.pk).update(state=job.state, finished_at=now, heartbeat_at=now)


def jobrun_stop(*, job_id: int | None, reason: str) -> None:
    """Close a still-running chain that hit its invocation cap (succeeded so far; the next scheduled run continues)."""
    if job_id is None:
        return
    job = JobRun.objects.filter(pk=job_id, state=JobRun.State.RUNNING).first()
    if job is None:
        return
    now = timezone.now()
    counts = _merge_counts(job.counts or {}, {"stopped_at_cap": 1})
    JobRun.objects.filter(pk=job.pk, state=JobRun.State.RUNNING).update(
        state=JobRun.State.FAILED if job.errors else JobRun.State.SUCCEEDED, finished_at=now, heartbeat_at=now, counts=counts
    )
    log.info("job run %s stopped: %s", job_id, reason)


# -- object deletions (the drain) --------------------------------------------------------------------


def object_deletions_record(*, tenant: Tenant, items: list[tuple[str, str, str, str]]) -> list[int]:
    """Record objects to delete, as (kind, key, repository name, reference); call inside the row-deleting transaction. Returns the record ids."""
    if not items:
        return []
    created = ObjectDeletion.objects.bulk_create(
        [ObjectDeletion(tenant=tenant, kind=k, key=key, repository_name=repo, reference=ref) for k, key, repo, ref in items]
    )
    return [r.pk for r in created]


def _still_used(tenant: Tenant, rows: list[ObjectDeletion]) -> set[int]:
    """Ids of deletion records whose key is in use again (a push re-created what it stands for): keep those objects."""
    by_kind: dict[str, list[ObjectDeletion]] = {}
    for r in rows:
        by_kind.setdefault(r.kind, []).append(r)
    keep: set[int] = set()
    data = by_kind.get(ObjectDeletion.Kind.DATA, [])
    if data:
        used = set(Blob.objects.filter(storage_key__in=[r.key for r in data]).values_list("storage_key", flat=True))
        keep |= {r.pk for r in data if r.key in used}
    index = by_kind.get(ObjectDeletion.Kind.INDEX, [])
    if index:
        used = set(Blob.objects.filter(tenant=tenant, digest__in=[r.reference for r in index]).values_list("digest", flat=True))
        keep |= {r.pk for r in index if r.reference in used}
    mans = by_kind.get(ObjectDeletion.Kind.MANIFEST, [])
    if mans:
        used_pairs = set(
            Manifest.objects.filter(
                tenant=tenant, repository__name__in={r.repository_name for r in mans}, digest__in={r.reference for r in mans}
            ).values_list("repository__name", "digest")
        )
        keep |= {r.pk for r in mans if (r.repository_name, r.reference) in used_pairs}
    tags = by_kind.get(ObjectDeletion.Kind.TAG, [])
    if tags:
        used_pairs = set(
            Tag.objects.filter(
                tenant=tenant, repository__name__in={r.repository_name for r in tags}, name__in={r.reference for r in tags}
            ).values_list("repository__name", "name")
        )
        keep |= {r.pk for r in tags if (r.repository_name, r.reference) in used_pairs}
    return keep


def object_deletions_drain(
    *, tenant: Tenant, batch_size: int, max_batches: int, ids: Sequence[int] | None = None
) -> tuple[int, int, bool]:
    """Delete recorded objects (only `ids`, if given) in batches under per-key locks, after one more check that nothing uses them: (deleted, kept, done).

    Idempotent: a record goes only in the transaction that follows its DeleteObjects, and
    deleting a missing key succeeds, so a killed drain repeats at most one batch.
    """
    store = store_for(tenant)
    deleted = kept = 0
    for _ in range(max_batches):
        with transaction.atomic():
            rows = locks.object_deletions_for_drain(tenant=tenant, limit=batch_size, ids=ids)
            if not rows:
                return deleted, kept, True
            # The same key locks a push takes before writing index/manifest/tag objects.
            locks.object_keys_lock(r.key for r in rows)
            in_use = _still_used(tenant, rows)
            doomed = sorted({r.key for r in rows if r.pk not in in_use})
            if doomed:
                store.delete(doomed)
            ObjectDeletion.objects.filter(pk__in=[r.pk for r in rows]).delete()
            deleted += len(doomed)
            kept += len(in_use)
    pending = ObjectDeletion.objects.filter(tenant=tenant)
    return deleted, kept, not (pending.filter(pk__in=list(ids)) if ids is not None else pending).exists()


# -- mark -------------------------------------------------------------------------------------------------

_LIVE_MANIFESTS = """
INSERT INTO {table} (id)
WITH RECURSIVE
repo_policy AS (
    SELECT r.id AS repository_id,
           CASE WHEN rp.id IS NOT NULL THEN rp.enabled ELSE tp.enabled END AS enabled,
           CASE WHEN rp.id IS NOT NULL THEN rp.untagged_days ELSE tp.untagged_days END AS untagged_days
    FROM registry_repository r
    LEFT JOIN registry_retentionpolicy rp ON rp.repository_id = r.id
    LEFT JOIN registry_retentionpolicy tp ON tp.tenant_id = r.tenant_id AND tp.repository_id IS NULL
    WHERE r.tenant_id = %(tenant)s
),
roots AS (
    SELECT t.manifest_id AS id FROM registry_tag t WHERE t.tenant_id = %(tenant)s
    UNION
    SELECT m.id FROM registry_manifest m JOIN repo_policy p ON p.repository_id = m.repository_id
    WHERE m.tenant_id = %(tenant)s AND p.enabled AND p.untagged_days IS NOT NULL
      AND m.created_at > %(now)s - make_interval(days => p.untagged_days)
),
edges AS MATERIALIZED (
    SELECT mc.parent_id AS src, mc.child_id AS dst
    FROM registry_manifestchild mc JOIN registry_manifest p ON p.id = mc.parent_id
    WHERE p.tenant_id = %(tenant)s
    UNION ALL
    SELECT s.id, r.id
    FROM registry_manifest r JOIN registry_manifest s ON s.repository_id = r.repository_id AND s.digest = r.subject_digest
    WHERE r.tenant_id = %(tenant)s AND r.subject_digest <> ''
),
live(id) AS (
    SELECT id FROM roots
    UNION
    SELECT e.dst FROM edges e JOIN live l ON e.src = l.id
)
SELECT id FROM live
"""

# Rows a push holds are skipped (SKIP LOCKED): GC never waits for a push here, nor deadlocks with one.
_MARK_STATEMENTS = {
    "manifests_unmarked": """
UPDATE registry_manifest SET gc_candidate_since = NULL WHERE id IN (
    SELECT m.id FROM registry_manifest m JOIN {table} l ON l.id = m.id
    WHERE m.tenant_id = %(tenant)s AND m.gc_candidate_since IS NOT NULL
    FOR NO KEY UPDATE OF m SKIP LOCKED)""",
    "manifests_marked": """
UPDATE registry_manifest SET gc_candidate_since = %(now)s WHERE id IN (
    SELECT m.id FROM registry_manifest m
    WHERE m.tenant_id = %(tenant)s AND m.gc_candidate_since IS NULL AND NOT EXISTS (SELECT 1 FROM {table} l WHERE l.id = m.id)
    FOR NO KEY UPDATE OF m SKIP LOCKED)""",
    "blobs_unmarked": """
UPDATE registry_blob SET gc_candidate_since = NULL WHERE id IN (
    SELECT b.id FROM registry_blob b
    WHERE b.tenant_id = %(tenant)s AND b.gc_candidate_since IS NOT NULL
      AND EXISTS (SELECT 1 FROM registry_manifestblob mb JOIN {table} l ON l.id = mb.manifest_id WHERE mb.blob_id = b.id)
    FOR NO KEY UPDATE OF b SKIP LOCKED)""",
    "blobs_marked": """
UPDATE registry_blob SET gc_candidate_since = %(now)s WHERE id IN (
    SELECT b.id FROM registry_blob b
    WHERE b.tenant_id = %(tenant)s AND b.gc_candidate_since IS NULL
      AND NOT EXISTS (SELECT 1 FROM registry_manifestblob mb JOIN {table} l ON l.id = mb.manifest_id WHERE mb.blob_id = b.id)
    FOR NO KEY UPDATE OF b SKIP LOCKED)""",
}


def gc_mark(*, tenant: Tenant, now: datetime) -> dict[str, int]:
    """Mark the tenant's unreachable manifests and blobs (candidate since `now` unless marked), unmark reachable ones; set-based, 8 statements."""
    table = f"gc_live_{uuid.uuid4().hex[:12]}"
    params = {"tenant": tenant.pk, "now": now}
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {table} (id bigint PRIMARY KEY)")
        try:
            cursor.execute(_LIVE_MANIFESTS.format(table=table), params)
            counts["manifests_live"] = cursor.rowcount
            cursor.execute(f"ANALYZE {table}")
            for name, sql in _MARK_STATEMENTS.items():
                cursor.execute(sql.format(table=table), params)
                counts[name] = cursor.rowcount
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return counts


# -- sweep ------------------------------------------------------------------------------------------------


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
        present = {m.pk: m for m in qs.only("id", "digest", "repository_id", "gc_candidate_since") if (m.repository_id, m.digest) in wanted}
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


@dataclass
class GcReport:
    """What one `gc_run` invocation did (or, dry run, would do)."""

    tenant: str
    bucket: str
    dry_run: bool
    grace_seconds: int
    job_id: int | None = None
    done: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    bytes_freed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would go
    blobs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.dry_run:
            out.pop("manifests")
            out.pop("blobs")
        return out


class _Budget:
    def __init__(self, batches: int) -> None:
        self.left = batches

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class _DryRunRollback(Exception):
    pass


def _sweep_manifests(
    *, tenant: Tenant, cutoff: datetime, cfg: GcSettings, budget: _Budget, report: GcReport, job: JobRun | None, gone: set[int]
) -> bool:
    """Delete eligible manifests newest first (an index before its children); True when none is left to look at."""
    dry = report.dry_run
    after: int | None = None
    while True:
        qs = Manifest.objects.filter(tenant=tenant, gc_candidate_since__lte=cutoff)
        if after is not None:
            qs = qs.filter(pk__lt=after)
        ids = list(qs.order_by("-pk").values_list("pk", flat=True)[: cfg.batch_size])
        if not ids:
            return True
        if not budget.take():
            return False
        after = ids[-1]
        with transaction.atomic():
            if dry:
                rows = list(
                    Manifest.objects.filter(pk__in=ids).select_related("repository")
                    .only("id", "digest", "size", "subject_digest", "gc_candidate_since", "tenant_id", "repository_id", "repository__name")
                    .order_by("pk")
                )
            else:
                rows = locks.manifests_for_delete(tenant=tenant, ids=ids)
            skipped = len(ids) - len(rows)
            doomed, kept = _manifests_deletable(tenant=tenant, rows=rows, cutoff=cutoff, lock=not dry, gone=gone)
            if doomed and not dry and not _delete_rows(report, job, "manifests", lambda doomed=doomed: _manifests_delete(tenant, doomed)):
                doomed = []
            freed = sum(m.size for m in doomed)
        if dry:
            # Deleted rows are gone from the database; a dry run has to remember what it counted.
            gone |= {m.pk for m in doomed}
        if dry:
            room = LISTED_MAX - len(report.manifests)
            report.manifests += [{"repository": m.repository.name, "digest": m.digest, "size": m.size} for m in doomed[: max(room, 0)]]
        batch = {"manifests_deleted": len(doomed), "manifests_kept": kept, "manifests_skipped_locked": skipped}
        report.add(**batch)
        report.bytes_freed += freed
        if job is not None and not dry:
            jobrun_progress(job=job, counts=batch, bytes_freed=freed)
        if not dry:
            _drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)


def _delete_rows(report: GcReport, job: JobRun | None, what: str, delete: Any) -> bool:
    """Run `delete` in a savepoint; a row something still protects (a foreign key we did not foresee) keeps the batch."""
    try:
        with transaction.atomic():
            delete()
        return True
    except ProtectedError as exc:
        # When in doubt, keep: log and count it, delete nothing of this batch.
        message = f"kept a batch of {what}: still referenced ({exc.args[0] if exc.args else exc})"[:500]
        log.warning("gc: %s", message)
        report.errors.append(message)
        if job is not None:
            jobrun_progress(job=job, counts={f"{what}_protected": 1}, errors=[message])
        return False


def _manifests_delete(tenant: Tenant, doomed: list[Manifest]) -> None:
    pks = [m.pk for m in doomed]
    ManifestChild.objects.filter(parent_id__in=pks).delete()
    ManifestBlob.objects.filter(manifest_id__in=pks).delete()
    Manifest.objects.filter(pk__in=pks).only("id").delete()
    object_deletions_record(
        tenant=tenant,
        items=[
            (ObjectDeletion.Kind.MANIFEST, keys.manifest_key(tenant.pk, m.repository.name, m.digest), m.repository.name, m.digest)
            for m in doomed
        ],
    )


def _blobs_delete(tenant: Tenant, doomed: list[Blob]) -> None:
    pks = [b.pk for b in doomed]
    RepositoryBlob.objects.filter(blob_id__in=pks).delete()
    Blob.objects.filter(pk__in=pks).delete()
    items: list[tuple[str, str, str, str]] = []
    for b in doomed:
        items.append((ObjectDeletion.Kind.DATA, b.storage_key, "", b.digest))
        items.append((ObjectDeletion.Kind.INDEX, keys.blob_index_key(tenant.pk, b.digest), "", b.digest))
    object_deletions_record(tenant=tenant, items=items)


def _sweep_blobs(
    *, tenant: Tenant, cutoff: datetime, cfg: GcSettings, budget: _Budget, report: GcReport, job: JobRun | None, gone_manifests: set[int]
) -> bool:
    """Delete eligible blobs (rows, then objects); True when none is left to look at."""
    dry = report.dry_run
    after = 0
    while True:
        ids = list(
            Blob.objects.filter(tenant=tenant, gc_candidate_since__lte=cutoff, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[: cfg.batch_size]
        )
        if not ids:
            return True
        if not budget.take():
            return False
        after = ids[-1]
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
        report.add(**batch)
        report.bytes_freed += freed
        if job is not None and not dry:
            jobrun_progress(job=job, counts=batch, bytes_freed=freed)
        if not dry:
            _drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)


def _drain(*, tenant: Tenant, cfg: GcSettings, budget: _Budget, report: GcReport, job: JobRun | None) -> bool:
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
            jobrun_progress(job=job, counts={"objects_deleted": deleted, "objects_kept": kept})
    report.seconds["drain"] = round(report.seconds.get("drain", 0.0) + time.monotonic() - started, 3)
    return done


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
        raise ValueError(f"batch_size must be between 1 and 1000 (Storj deletes at most 1000 keys per request), got {cfg.batch_size}")
    if cfg.max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {cfg.max_batches}")
    store = store_for(tenant)
    with jobrun_claim(kind=KIND_GC, tenant=tenant, dry_run=dry_run, job_id=job_id, task_id=task_id) as job:
        if job is None:
            return None
        report = GcReport(tenant=tenant.slug, bucket=store.bucket, dry_run=dry_run, grace_seconds=int(cfg.grace.total_seconds()), job_id=job.pk)
        if dry_run:
            try:
                with transaction.atomic():
                    _gc_steps(tenant=tenant, cfg=cfg, report=report, job=None, mark=True)
                    raise _DryRunRollback
            except _DryRunRollback:
                pass
            report.done = True
            jobrun_progress(job=job, counts=report.counts, bytes_freed=report.bytes_freed)
            jobrun_finish(job=job, done=True)
            return report
        # A continuation of a chain skips the mark: its marks are already in place.
        mark = not (job.counts or {}).get("mark_passes")
        report.done = _gc_steps(tenant=tenant, cfg=cfg, report=report, job=job, mark=mark)
        job.refresh_from_db(fields=["errors"])
        report.errors = list(job.errors or [])
        jobrun_finish(job=job, done=report.done)
        log.info("gc %s: %s", tenant.slug, report.counts, extra={"tenant": tenant.slug, "job_id": job.pk, "done": report.done})
        return report


def _gc_steps(*, tenant: Tenant, cfg: GcSettings, report: GcReport, job: JobRun | None, mark: bool) -> bool:
    budget = _Budget(cfg.max_batches)
    if not report.dry_run:
        # Objects of rows a killed run deleted but could not delete from the bucket.
        _drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)
    now = timezone.now()
    if mark:
        started = time.monotonic()
        counts = gc_mark(tenant=tenant, now=now)
        counts["mark_passes"] = 1
        report.add(**counts)
        report.seconds["mark"] = round(time.monotonic() - started, 3)
        if job is not None:
            jobrun_progress(job=job, counts=counts)
    cutoff = now - cfg.grace
    started = time.monotonic()
    gone: set[int] = set()  # dry run: manifests counted as deleted in this invocation
    done = _sweep_manifests(tenant=tenant, cutoff=cutoff, cfg=cfg, budget=budget, report=report, job=job, gone=gone)
    report.seconds["manifests"] = round(time.monotonic() - started, 3)
    if done:
        started = time.monotonic()
        done = _sweep_blobs(tenant=tenant, cutoff=cutoff, cfg=cfg, budget=budget, report=report, job=job, gone_manifests=gone)
        report.seconds["blobs"] = round(time.monotonic() - started, 3)
    if done and not report.dry_run:
        done = _drain(tenant=tenant, cfg=cfg, budget=budget, report=report, job=job)
    return done


def gc_run_to_completion(*, tenant: Tenant, dry_run: bool = False, grace: timedelta | None = None, batch_size: int | None = None) -> GcReport | None:
    """Run the tenant's GC invocation after invocation (same code as the task chain) until done; None if another worker holds it."""
    total: GcReport | None = None
    job_id: int | None = None
    while True:
        report = gc_run(tenant=tenant, dry_run=dry_run, job_id=job_id, grace=grace, batch_size=batch_size)
        if report is None:
            return total
        if total is None:
            total = report
        else:
            for k, v in report.counts.items():
                total.counts[k] = total.counts.get(k, 0) + v
            total.bytes_freed += report.bytes_freed
            for phase, secs in report.seconds.items():
                total.seconds[phase] = round(total.seconds.get(phase, 0.0) + secs, 3)
            total.errors = report.errors
            total.done = report.done
        if report.done:
            return total
        job_id = report.job_id


def gc_tenant_ids(*, after_id: int, limit: int) -> list[int]:
    """Ids of tenants after `after_id` (ascending, at most `limit`): the fan-out's cursor."""
    return list(Tenant.objects.filter(pk__gt=after_id).order_by("pk").values_list("pk", flat=True)[:limit])
