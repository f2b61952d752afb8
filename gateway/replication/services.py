"""Replication to a secondary storage target: the commit hook, copies and verification.

- A tenant opts in to one target (targets.py). Every blob and manifest pushed afterwards is queued
  (the registry's event stream → subscriber.py → `replication_enqueue`, after the flush
  commits) as one task per object; the periodic sweep backfills
  objects that have no replica row yet (older content, lost hooks), re-sends what is due,
  and re-verifies replicas about once per audit interval.
- A blob is copied primary → target by streaming (GET → PUT or multipart with the target's
  part size), hashed on the way; the replica is completed only when size and sha256 match,
  then its size is checked with a HEAD. Its small index object follows. A manifest is written
  from its exact bytes in PostgreSQL (checked against its digest): no egress at all.
- Replica keys equal primary keys, so the replica bucket has the primary's layout (and the
  same self-describing index and manifest objects, decision 0005).
- Rows carry state, attempts, last error, backoff and a lease; every step is a conditional
  UPDATE, so duplicate messages, retries and a killed worker are harmless (a multipart upload
  left by a dead worker is aborted by the next attempt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from gateway.registry.digests import digest_algorithm, digest_of
from gateway.registry.models import Blob, Manifest
from gateway.registry.stores import store_for
from gateway.replication import locks
from gateway.replication.conf import app_settings
from gateway.replication.integrity import integrity_flag
from gateway.replication.models import ObjectKind, ObjectReplica, TenantReplication
from gateway.replication.ratelimit import RequestPacer
from gateway.replication.reporting import problem_report
from gateway.replication.stores import target_store
from gateway.replication.transfer import ContentMismatch, SourceMissing, copy_verified, rehash
from gateway.storage import BlobStore, StorageError, keys

log = logging.getLogger(__name__)

State = ObjectReplica.State
RETRYABLE = (State.PENDING, State.FAILED, State.MISMATCH)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)


class ReplicaMismatch(Exception):
    """The replica written does not read back as expected (size)."""


# -- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    kind: str
    digest: str
    size: int
    data_key: str  # the blob's object, or the first repository's manifest object
    keys: tuple[str, ...]  # everything the replica must hold for it
    payload: bytes | None = None
    media_type: str = "application/octet-stream"


def _source(*, tenant_id: int, kind: str, digest: str) -> _Source | None:
    """What the primary currently holds for (tenant, kind, digest); None once GC removed it."""
    if kind == ObjectKind.BLOB:
        blob = Blob.objects.filter(tenant_id=tenant_id, digest=digest).first()
        if blob is None:
            return None
        index_key = keys.blob_index_key(tenant_id, digest)
        return _Source(kind=kind, digest=digest, size=blob.size, data_key=blob.storage_key, keys=(blob.storage_key, index_key))
    manifests = list(Manifest.objects.filter(tenant_id=tenant_id, digest=digest).select_related("repository").order_by("pk"))
    if not manifests:
        return None
    first = manifests[0]
    manifest_keys = tuple(keys.manifest_key(tenant_id, m.repository.name, digest) for m in manifests)
    return _Source(
        kind=kind,
        digest=digest,
        size=first.size,
        data_key=manifest_keys[0],
        keys=manifest_keys,
        payload=bytes(first.payload),
        media_type=first.media_type,
    )


def _target_id_for(tenant_id: int) -> int | None:
    return (
        TenantReplication.objects.filter(tenant_id=tenant_id, enabled=True, target__enabled=True)
        .values_list("target_id", flat=True)
        .first()
    )


def _mark_pending(*, target_id: int, tenant_id: int, source: _Source) -> int:
    """Upsert the replica row to pending for the object's current keys; returns its id."""
    now = timezone.now()
    row, created = ObjectReplica.objects.get_or_create(
        target_id=target_id,
        kind=source.kind,
        tenant_id=tenant_id,
        digest=source.digest,
        defaults={"size": source.size, "source_key": source.data_key, "state": State.PENDING, "pending_since": now},
    )
    if not created:
        ObjectReplica.objects.filter(pk=row.pk).update(
            state=State.PENDING,
            size=source.size,
            source_key=source.data_key,
            attempts=0,
            last_error="",
            next_attempt_at=None,
            # A row already waiting keeps its age: the lag is how long the oldest object has waited.
            pending_since=Case(When(state=State.REPLICATED, then=Value(now)), default=Coalesce(F("pending_since"), Value(now))),
            updated_at=now,
        )
    return row.pk


# -- the commit hook -----------------------------------------------------------------------------


def replication_enqueue(*, tenant_id: int, kind: str, digest: str) -> None:
    """After the current transaction commits, mark the object pending and queue its copy; a no-op without replication."""
    if kind not in ObjectKind.values:
        raise ValueError(f"kind must be one of {ObjectKind.values}, got {kind!r}")
    target_id = _target_id_for(tenant_id)
    if target_id is None:
        return

    def after_commit() -> None:
        source = _source(tenant_id=tenant_id, kind=kind, digest=digest)
        if source is None:
            return
        replica_id = _mark_pending(target_id=target_id, tenant_id=tenant_id, source=source)
        from gateway.replication.tasks import replicate_object_task

        replicate_object_task.delay(replica_id=replica_id)

    # robust: a broker or database hiccup here must not fail the push; the sweep backfills.
    transaction.on_commit(after_commit, robust=True)


# -- one object ----------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(attempts - 1, 0)))


def _fail(row: ObjectReplica, *, error: str, state: str = State.FAILED) -> None:
    """Record a failed attempt with row-level backoff; tell the tenant once the attempts run out."""
    now = timezone.now()
    ObjectReplica.objects.filter(pk=row.pk).update(
        state=state,
        last_error=error[:2000],
        next_attempt_at=now + _backoff(row.attempts),
        lease_until=None,
        pending_since=Coalesce(F("pending_since"), Value(now)),
        updated_at=now,
    )
    if row.attempts == app_settings.replication_max_attempts:
        problem_report(
            tenant=row.tenant,
            action="replication.failed",
            event="replication.failed",
            target=row.digest,
            detail={
                "kind": row.kind,
                "digest": row.digest,
                "key": row.source_key,
                "target": row.target.name,
                "attempts": row.attempts,
                "error": error[:500],
            },
        )


def _copy_blob(row: ObjectReplica, source: _Source, dest: BlobStore, pacer: RequestPacer | None) -> list[str]:
    def started(upload_id: str) -> None:
        ObjectReplica.objects.filter(pk=row.pk).update(multipart_id=upload_id, multipart_key=source.data_key)

    copy_verified(
        source=store_for(row.tenant_id),
        source_key=source.data_key,
        dest=dest,
        dest_key=source.data_key,
        size=source.size,
        digest=source.digest,
        pacer=pacer,
        on_multipart_start=started,
        on_part=lambda: locks.replica_lease_renew(replica_id=row.pk),
    )
    ObjectReplica.objects.filter(pk=row.pk).update(multipart_id="", multipart_key="")
    index_key = keys.blob_index_key(row.tenant_id, source.digest)
    if pacer:
        pacer.acquire(2)
    dest.put_json(index_key, keys.blob_index_doc(source.digest, source.size, source.data_key))
    st = dest.stat(source.data_key)
    if st is None or st.size != source.size:
        raise ReplicaMismatch(
            f"replica {dest.bucket}/{source.data_key} reads back as {st.size if st else 'missing'}, expected {source.size} bytes"
        )
    return [source.data_key, index_key]


def _copy_manifest(row: ObjectReplica, source: _Source, dest: BlobStore, pacer: RequestPacer | None) -> list[str]:
    payload = source.payload or b""
    actual = digest_of(payload, digest_algorithm(source.digest))
    if len(payload) != source.size or actual != source.digest:
        raise ContentMismatch(
            f"the database's bytes of manifest {source.digest} do not hash to it", actual_size=len(payload), actual_digest=actual
        )
    for key in source.keys:
        if pacer:
            pacer.acquire(2)
        dest.put(key, payload, content_type=source.media_type)
        st = dest.stat(key)
        if st is None or st.size != len(payload):
            raise ReplicaMismatch(
                f"replica {dest.bucket}/{key} reads back as {st.size if st else 'missing'}, expected {len(payload)} bytes"
            )
    return list(source.keys)


def _replica_complete(row: ObjectReplica, *, source: _Source, written: list[str]) -> str:
    """Mark the copied row replicated, unless it was re-queued for another key meanwhile ("superseded")."""
    now = timezone.now()
    done = ObjectReplica.objects.filter(pk=row.pk, source_key=source.data_key, state__in=RETRYABLE).update(
        state=State.REPLICATED,
        replica_keys=written,
        size=source.size,
        last_error="",
        next_attempt_at=None,
        lease_until=None,
        pending_since=None,
        replicated_at=now,
        verified_at=now,
        updated_at=now,
    )
    if not done:  # re-queued meanwhile for another key (GC and a new push): the next attempt copies that
        ObjectReplica.objects.filter(pk=row.pk).update(lease_until=None, replica_keys=written)
        return "superseded"
    return "replicated"


def replica_replicate(*, replica_id: int, pacer: RequestPacer | None = None) -> str:
    """Copy one object to its target and verify it; idempotent, claims the row (conditional UPDATE + lease).

    Returns "replicated", or why nothing was copied: "done" (already replicated), "busy" (held
    by another worker), "gone" (no such row), "pruned" (GC removed the object: replica copies
    removed too), "disabled", "source_missing" / "source_corrupt" (primary flagged for the
    audit). Raises StorageError after recording a failed attempt, so the task retries.
    """
    if not locks.replica_claim(replica_id=replica_id):
        state = ObjectReplica.objects.filter(pk=replica_id).values_list("state", flat=True).first()
        return "gone" if state is None else ("busy" if state in RETRYABLE else "done")
    row = ObjectReplica.objects.select_related("target", "tenant").get(pk=replica_id)
    if not row.target.enabled or _target_id_for(row.tenant_id) != row.target_id:
        ObjectReplica.objects.filter(pk=row.pk).update(lease_until=None, attempts=F("attempts") - 1)
        return "disabled"
    try:
        dest = target_store(row.target)
        if row.multipart_id:  # left by a worker that died mid-copy
            dest.multipart_abort(row.multipart_key or row.source_key, row.multipart_id)
            ObjectReplica.objects.filter(pk=row.pk).update(multipart_id="", multipart_key="")
        source = _source(tenant_id=row.tenant_id, kind=row.kind, digest=row.digest)
        if source is None:
            if ObjectReplica.objects.filter(pk=row.pk, source_key=row.source_key).delete()[0] and row.replica_keys:
                dest.delete(list(row.replica_keys))
            return "pruned"
        if (row.source_key, row.size) != (source.data_key, source.size):
            ObjectReplica.objects.filter(pk=row.pk).update(source_key=source.data_key, size=source.size)
        copy = _copy_blob if row.kind == ObjectKind.BLOB else _copy_manifest
        written = copy(row, source, dest, pacer)
        stale = [k for k in row.replica_keys if k not in written]
        if stale:
            dest.delete(stale)
    except SourceMissing as exc:
        _fail(row, error=f"source missing: {exc}")
        integrity_flag(tenant_id=row.tenant_id, kind=row.kind, digest=row.digest, reason=f"replication: {exc}")
        return "source_missing"
    except ContentMismatch as exc:
        _fail(row, error=f"source corrupt: {exc}")
        integrity_flag(tenant_id=row.tenant_id, kind=row.kind, digest=row.digest, reason=f"replication: {exc}")
        return "source_corrupt"
    except ReplicaMismatch as exc:
        _fail(row, error=str(exc), state=State.MISMATCH)
        return "mismatch"
    except StorageError as exc:
        _fail(row, error=f"storage: {exc}")
        raise
    except BaseException as exc:
        _fail(row, error=f"{type(exc).__name__}: {exc}")
        raise
    return _replica_complete(row, source=source, written=written)


def replica_verify(*, replica_id: int, deep: bool = False, pacer: RequestPacer | None = None) -> str:
    """Check a replicated object on its target: HEAD sizes (and re-hash when `deep`); prunes it if GC removed the source.

    Returns "verified", "mismatch" (queued for a new copy), "stale" (the object's keys changed:
    queued), "pruned", or "skipped" (not in state replicated).
    """
    row = ObjectReplica.objects.select_related("target").filter(pk=replica_id, state=State.REPLICATED).first()
    if row is None:
        return "skipped"
    dest = target_store(row.target)
    source = _source(tenant_id=row.tenant_id, kind=row.kind, digest=row.digest)
    if source is None:
        if (
            ObjectReplica.objects.filter(pk=row.pk, state=State.REPLICATED, source_key=row.source_key).delete()[0]
            and row.replica_keys
        ):
            dest.delete(list(row.replica_keys))
        return "pruned"
    if source.data_key != row.source_key or set(source.keys) != set(row.replica_keys):
        _mark_pending(target_id=row.target_id, tenant_id=row.tenant_id, source=source)
        return "stale"
    problem = ""
    for key in source.keys:
        if pacer:
            pacer.acquire()
        st = dest.stat(key)
        if st is None:
            problem = f"replica {key} is missing"
        elif not key.endswith(".json") and st.size != source.size:
            problem = f"replica {key} is {st.size} bytes, expected {source.size}"
        if problem:
            break
    if not problem and deep:
        try:
            hashed = rehash(dest, source.data_key, expected=source.digest, pacer=pacer)
        except SourceMissing:
            hashed = None
        if hashed is None or hashed.digest != source.digest:
            problem = f"replica {source.data_key} hashes to {hashed.digest if hashed else 'nothing'}, expected {source.digest}"
    now = timezone.now()
    if problem:
        ObjectReplica.objects.filter(pk=row.pk, state=State.REPLICATED).update(
            state=State.MISMATCH,
            last_error=problem,
            pending_since=now,
            next_attempt_at=None,
            attempts=0,
            updated_at=now,
        )
        log.warning("replication: %s", problem)
        return "mismatch"
    ObjectReplica.objects.filter(pk=row.pk, state=State.REPLICATED).update(verified_at=now, updated_at=now)
    return "verified"
