"""Repair of a bad primary object from a verified source: its exact bytes in PostgreSQL (manifests, no egress) or a replica.

The repair streams into the same primary key and is completed only if the digest matches
(`copy_verified`); a replica found bad on the way is handed back to the replication sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from gateway.registry.digests import digest_algorithm, digest_of
from gateway.replication.models import ObjectAudit, ObjectKind, ObjectReplica
from gateway.replication.ratelimit import RequestPacer
from gateway.replication.stores import target_store
from gateway.replication.transfer import ContentMismatch, SourceMissing, TransferError, copy_verified
from gateway.storage import BlobStore, StorageError, keys


@dataclass(frozen=True)
class Expected:
    """What an audited object must be, from its database row."""

    key: str
    size: int
    digest: str
    target: str  # what the audit log names: the digest, or repository@digest for manifests
    payload: bytes | None = None  # a manifest's exact bytes from PostgreSQL
    media_type: str = "application/octet-stream"


def _rewrite(row: ObjectAudit, exp: Expected, store: BlobStore, pacer: RequestPacer) -> tuple[str, str]:
    """Rewrite a bad primary object from a verified source: (source used or "", error or "")."""
    if (
        exp.payload is not None
        and len(exp.payload) == exp.size
        and digest_of(exp.payload, digest_algorithm(exp.digest)) == exp.digest
    ):
        pacer.acquire()
        store.put(exp.key, exp.payload, content_type=exp.media_type)
        return "database", ""
    errors = []
    replicas = (
        ObjectReplica.objects.filter(
            tenant_id=row.tenant_id, kind=row.kind, digest=exp.digest, state=ObjectReplica.State.REPLICATED, target__enabled=True
        )
        .select_related("target")
        .order_by("-verified_at", "pk")
    )
    for replica in replicas:
        replica_keys = [k for k in replica.replica_keys if not k.endswith(".json")]
        source_key = exp.key if exp.key in replica_keys else (replica_keys[0] if replica_keys else "")
        if not source_key:
            continue
        try:
            copy_verified(
                source=target_store(replica.target),
                source_key=source_key,
                dest=store,
                dest_key=exp.key,
                size=exp.size,
                digest=exp.digest,
                pacer=pacer,
            )
        except (TransferError, StorageError) as exc:
            # Nothing was completed at the primary key; the object stays flagged and is tried again.
            errors.append(f"replica on {replica.target.name}: {exc}")
            if isinstance(exc, (SourceMissing, ContentMismatch)):
                # The replica itself is bad: have the replication sweep copy it again once the primary is sound.
                ObjectReplica.objects.filter(pk=replica.pk, state=ObjectReplica.State.REPLICATED).update(
                    state=ObjectReplica.State.MISMATCH,
                    last_error=str(exc)[:500],
                    pending_since=timezone.now(),
                    next_attempt_at=None,
                )
            continue
        if row.kind == ObjectKind.BLOB:
            index_key = keys.blob_index_key(row.tenant_id, exp.digest)
            pacer.acquire()
            if store.stat(index_key) is None:
                pacer.acquire()
                store.put_json(index_key, keys.blob_index_doc(exp.digest, exp.size, exp.key))
        return f"replica:{replica.target.name}", ""
    if not errors:
        return "", "no verified replica"
    return "", "; ".join(errors)[:1000]


def object_repair(row: ObjectAudit, exp: Expected, store: BlobStore, pacer: RequestPacer) -> tuple[str, str, str]:
    """Rewrite a bad primary object from a verified source, then HEAD what was written: (source used or "", error or "", the new ETag)."""
    try:
        source, error = _rewrite(row, exp, store, pacer)
        if not source:
            return "", error, ""
        pacer.acquire()
        written = store.stat(exp.key)
    except (TransferError, StorageError) as exc:
        return "", str(exc)[:1000], ""
    if written is None or written.size != exp.size:
        return "", f"the repaired object reads back as {written.size if written else 'missing'}", ""
    return source, "", written.etag
