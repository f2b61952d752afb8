"""Blob uploads: start, append (PATCH), finish (PUT), cancel, monolithic and mount.

Every session writes its own object key (Storj overwrites a pending multipart upload that
starts on the same key, and has no UploadPartCopy); PostgreSQL maps digest → key. The
hash state (SHA-256 and/or SHA-512), offset, finished parts and the sub-5 MiB tail (small:
in the row; larger: in a per-session object) live with the BlobUpload row, so any web
process continues a session after a restart. A request holds the session's lease (a
PostgreSQL session advisory lock of its connection, gone the moment the process dies) while
it streams; nothing is written to the row until the request's bytes are in S3.
Caps, quota locking and tails: docs/decisions/0012-upload-hardening.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import audit_record
from gateway.registry import locks, selectors
from gateway.registry.digests import ALGORITHMS, ResumableHasher, digest_algorithm
from gateway.registry.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    Denied,
    DigestInvalid,
    RangeInvalid,
    SizeInvalid,
    StorageUnavailableError,
    TooManyRequests,
)
from gateway.registry.models import Blob, BlobUpload, ManifestBlob, Repository, RepositoryBlob
from gateway.registry.services import events, upload_limits
from gateway.registry.stores import store_for
from gateway.registry.streaming import PartWriter, Reader, ShortRead
from gateway.storage import BlobStore, keys

log = logging.getLogger(__name__)

# How far ahead a streaming request's heartbeat (`leased_until`) keeps the stale-upload sweep away.
LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Body:
    """A request body to consume: a reader and its announced length (None: read to EOF)."""

    reader: Reader
    length: int | None


def blob_upload_start(*, tenant: Tenant, repository: Repository, algorithms: tuple[str, ...] = ALGORITHMS) -> BlobUpload:
    """Open an upload session with its own object key, hashing `algorithms`; 429 past the tenant's open-session cap,
    DENIED when the tenant is already at or over its storage quota."""
    upload_limits.quota_start_check(tenant=tenant)
    cap = settings.GATEWAY_UPLOAD_MAX_SESSIONS
    upload_id = uuid.uuid4()
    with transaction.atomic():
        # Count and insert under the tenant's session lock, so parallel starts cannot pass the cap together.
        locks.upload_sessions_lock(tenant=tenant)
        open_sessions = BlobUpload.objects.filter(tenant=tenant, state=BlobUpload.State.ACTIVE).count()
        if open_sessions >= cap:
            raise TooManyRequests(
                f"too many open upload sessions: the tenant has {open_sessions}, the limit is {cap}; "
                "finish or cancel (DELETE) some, idle ones are closed after the upload idle timeout",
                detail={"limit": "upload_sessions", "open_sessions": open_sessions, "max_sessions": cap},
            )
        return BlobUpload.objects.create(
            id=upload_id,
            tenant=tenant,
            repository=repository,
            storage_key=keys.upload_key(tenant.pk, upload_id),
            hash_state=ResumableHasher(algorithms=algorithms).state(),
        )


@contextmanager
def _leased(*, tenant: Tenant, repository: Repository, upload_id: uuid.UUID) -> Iterator[BlobUpload]:
    """Hold the session for this request, or fail: unknown (404) or busy (416). A dead holder's lease is already gone."""
    with locks.upload_lease(upload_id) as taken:
        claimed = 0
        if taken:
            # Conditional on ACTIVE, and the heartbeat keeps the stale sweep off: exactly one of us and the sweep wins.
            now = timezone.now()
            claimed = BlobUpload.objects.filter(
                tenant=tenant, repository=repository, pk=upload_id, state=BlobUpload.State.ACTIVE
            ).update(leased_until=now + LEASE, last_activity_at=now)
        upload = selectors.upload_get(tenant=tenant, repository=repository, upload_id=upload_id)
        if upload is None or (taken and not claimed):
            raise BlobUploadUnknown(detail={"uuid": str(upload_id)})
        if not taken:
            raise RangeInvalid(
                "another request is writing to this upload session",
                detail={"uuid": str(upload_id)},
                headers=upload_limits.range_headers(upload),
            )
        try:
            yield upload
        finally:
            BlobUpload.objects.filter(pk=upload.pk, leased_until__isnull=False).update(leased_until=None)


def _writer(upload: BlobUpload, store: BlobStore, hasher: ResumableHasher) -> PartWriter:
    def multipart_started(multipart_id: str) -> None:
        # Persist at once, so the sweep can abort it even if this request dies.
        BlobUpload.objects.filter(pk=upload.pk).update(multipart_id=multipart_id)

    def part_submitted() -> None:
        BlobUpload.objects.filter(pk=upload.pk).update(leased_until=timezone.now() + LEASE)

    return PartWriter(
        store=store,
        key=upload.storage_key,
        multipart_id=upload.multipart_id,
        parts=upload.parts,
        tail=upload_limits.tail_read(upload, store),
        hasher=hasher,
        on_multipart_start=multipart_started,
        on_part_submitted=part_submitted,
        inflight=settings.GATEWAY_UPLOAD_INFLIGHT_PARTS,
    )


def _consume(writer: PartWriter, body: Body) -> None:
    try:
        writer.consume(body.reader, body.length)
    except ShortRead as exc:
        writer.abandon()
        raise SizeInvalid(str(exc)) from None
    except BaseException:
        writer.abandon()
        raise


def _consume_within_quota(
    *, tenant: Tenant, upload: BlobUpload, writer: PartWriter, store: BlobStore, body: Body, digest: str = ""
) -> None:
    """Consume the body checked against the storage quota as it arrives (not when `digest` is a blob the tenant
    already stores); a refusal ends the session, leaving nothing."""
    try:
        reader = upload_limits.quota_reader(
            tenant=tenant, upload=upload, reader=body.reader, length=body.length, part_size=store.part_size, digest=digest
        )
        _consume(writer, Body(reader, body.length))
    except Denied:
        _discard(upload, store, multipart_id=writer.multipart_id)
        raise


def blob_upload_append(
    *, tenant: Tenant, repository: Repository, upload_id: uuid.UUID, body: Body, range_start: int | None = None
) -> BlobUpload:
    """PATCH: stream a chunk into the session. Offset, hash, parts and tail advance together."""
    store = store_for(tenant)
    with _leased(tenant=tenant, repository=repository, upload_id=upload_id) as upload:
        if range_start is not None and range_start != upload.offset:
            raise RangeInvalid(
                f"chunk starts at {range_start}, upload is at {upload.offset}", headers=upload_limits.range_headers(upload)
            )
        upload_limits.tail_check(tenant=tenant, upload=upload, length=body.length)
        hasher = ResumableHasher(bytes(upload.hash_state))
        writer = _writer(upload, store, hasher)
        _consume_within_quota(tenant=tenant, upload=upload, writer=writer, store=store, body=body)
        tail = writer.checkpoint()
        old_tail_key = upload.tail_key
        upload.offset += writer.received
        upload_limits.tail_keep(tenant=tenant, upload=upload, store=store, tail=tail)
        upload.multipart_id = writer.multipart_id
        upload.hash_state = hasher.state()
        upload.parts = writer.parts
        upload.leased_until = None
        upload.last_activity_at = timezone.now()
        upload.save(
            update_fields=[
                "multipart_id",
                "offset",
                "hash_state",
                "parts",
                "tail",
                "tail_key",
                "tail_size",
                "tail_spilled",
                "leased_until",
                "last_activity_at",
            ]
        )
        if old_tail_key and old_tail_key != upload.tail_key:
            upload_limits.tail_drop(upload, store, old_tail_key)
        return upload


def blob_upload_finish(*, tenant: Tenant, repository: Repository, upload_id: uuid.UUID, digest: str, body: Body | None) -> Blob:
    """PUT ?digest=: take the last chunk, check digest and size, commit the blob and link it."""
    store = store_for(tenant)
    with _leased(tenant=tenant, repository=repository, upload_id=upload_id) as upload:
        hasher = ResumableHasher(bytes(upload.hash_state))
        algorithm = digest_algorithm(digest)
        if algorithm not in hasher.algorithms:
            _discard(upload, store, multipart_id=upload.multipart_id)
            raise DigestInvalid(
                f"this upload session hashed {', '.join(hasher.algorithms)} only (its digest-algorithm); "
                f"it cannot be finished with a {algorithm} digest",
                detail={"expected": digest, "algorithms": list(hasher.algorithms)},
            )
        writer = _writer(upload, store, hasher)
        if body is not None:  # a blob the tenant already stores costs nothing new (quota_reader checks, under a quota)
            _consume_within_quota(tenant=tenant, upload=upload, writer=writer, store=store, body=body, digest=digest)
        return _commit(tenant=tenant, repository=repository, upload=upload, writer=writer, digest=digest, store=store)


def _commit(
    *, tenant: Tenant, repository: Repository, upload: BlobUpload, writer: PartWriter, digest: str, store: BlobStore
) -> Blob:
    size = upload.offset + writer.received
    actual = writer.hasher.digest(digest_algorithm(digest))
    if actual != digest:
        writer.abandon()
        _discard(upload, store, multipart_id=writer.multipart_id)
        raise DigestInvalid(detail={"expected": digest, "actual": actual})
    quota = _check_quota(tenant=tenant, size=size, digest=digest, upload=upload, writer=writer, store=store)
    # Stored already for this tenant: link that blob under its row lock FIRST, and only then drop
    # our copy. If GC deleted the row meanwhile, store our own copy instead (decisions/0007).
    existing = _link(tenant=tenant, repository=repository, digest=digest, upload=upload)
    if existing is not None:
        writer.abandon()
        if writer.multipart_id:
            store.multipart_abort(upload.storage_key, writer.multipart_id)
        upload_limits.tail_drop(upload, store)
        return existing
    if writer.multipart_id:
        writer.flush_last_part()
        store.multipart_complete(upload.storage_key, writer.multipart_id, [(p[0], p[1]) for p in writer.parts])
    else:
        store.put(upload.storage_key, bytes(writer.buffer))
    try:
        blob, created = _blob_create(
            tenant=tenant, repository=repository, digest=digest, size=size, upload=upload, store=store, quota=quota is not None
        )
    except Denied:
        # Refused under the quota lock after the bytes were stored: nothing of this session may stay.
        store.delete([upload.storage_key])
        _discard(upload, store, multipart_id="")
        raise
    upload_limits.tail_drop(upload, store)
    if not created:
        # A concurrent push of the same layer committed first: theirs is linked, our copy goes.
        store.delete([upload.storage_key])
        return blob
    events.record(tenant=tenant, repository=repository.name, digest=digest, size=size, kind="blob", direction="push")
    return blob


def _blob_create(
    *, tenant: Tenant, repository: Repository, digest: str, size: int, upload: BlobUpload, store: BlobStore, quota: bool
) -> tuple[Blob, bool]:
    """Commit the session's stored bytes as the tenant's blob and link it; (blob, False) if a concurrent push won.

    With `quota`, the tenant's quota row is locked and the quota re-read and enforced under that lock."""
    index_key = keys.blob_index_key(tenant.pk, digest)
    with transaction.atomic():
        # The index key's lock orders us after another push of this digest and against GC deleting the index object.
        locks.object_keys_lock([index_key])
        # With a quota, new blobs of the tenant commit one at a time, each seeing the others' sizes.
        limit = locks.tenant_quota_for_update(tenant=tenant) if quota else None
        # Claim the session first: if the stale-upload sweep closed it, write nothing (it deletes the key).
        _session_done(upload)
        blob = locks.blob_share(tenant=tenant, digest=digest)
        created = blob is None
        if blob is None:
            if limit is not None:
                upload_limits.quota_enforce(tenant=tenant, quota=limit, size=size)
            store.put_json(index_key, keys.blob_index_doc(digest, size, upload.storage_key))
            try:
                with transaction.atomic():
                    blob = Blob.objects.create(tenant=tenant, digest=digest, size=size, storage_key=upload.storage_key)
            except IntegrityError:
                # Written by something that does not take the key lock (a registry rebuild).
                blob = locks.blob_share(tenant=tenant, digest=digest)
                if blob is None:
                    raise
                created = False
        _link_locked(tenant=tenant, repository=repository, blob=blob, upload=None)
    return blob, created


def _check_quota(
    *, tenant: Tenant, size: int, digest: str, upload: BlobUpload, writer: PartWriter, store: BlobStore
) -> int | None:
    """The tenant's quota (None: none); refuses early, before the bytes are committed (no lock: `_blob_create` checks again under it)."""
    quota = upload_limits.quota_get(tenant=tenant)
    if quota is None or selectors.blob_get(tenant=tenant, digest=digest) is not None:
        return quota
    try:
        upload_limits.quota_enforce(tenant=tenant, quota=quota, size=size)
    except Denied:
        writer.abandon()
        _discard(upload, store, multipart_id=writer.multipart_id)
        raise
    return quota


def _discard(upload: BlobUpload, store: BlobStore, *, multipart_id: str) -> None:
    """End the session without a blob: abort its multipart upload (if any), drop its tail and forget it."""
    if multipart_id:
        store.multipart_abort(upload.storage_key, multipart_id)
    BlobUpload.objects.filter(pk=upload.pk).update(state=BlobUpload.State.CANCELLED, tail=b"", tail_size=0, leased_until=None)
    upload_limits.tail_drop(upload, store)


def _link(*, tenant: Tenant, repository: Repository, digest: str, upload: BlobUpload | None) -> Blob | None:
    """Link the tenant's blob `digest` into `repository` under its row lock; None if there is no such row (any more)."""
    with transaction.atomic():
        # FOR KEY SHARE: GC cannot delete the row until we commit the link; if GC already did, we see no row.
        blob = locks.blob_share(tenant=tenant, digest=digest)
        if blob is None:
            return None
        _link_locked(tenant=tenant, repository=repository, blob=blob, upload=upload)
    return blob


def _link_locked(*, tenant: Tenant, repository: Repository, blob: Blob, upload: BlobUpload | None) -> None:
    RepositoryBlob.objects.get_or_create(tenant=tenant, repository=repository, blob=blob)
    if blob.gc_candidate_since is not None:
        # Linked again: GC's grace period starts over (the push's manifest is still to come).
        Blob.objects.filter(pk__in=locks.gc_marked_for_unmark(model=Blob, ids=[blob.pk])).update(gc_candidate_since=None)
    if upload is not None:
        _session_done(upload)


def _session_done(upload: BlobUpload) -> None:
    """ACTIVE → DONE, or BLOB_UPLOAD_UNKNOWN when the stale-upload sweep closed the session (its key is then deleted)."""
    done = BlobUpload.objects.filter(pk=upload.pk, state=BlobUpload.State.ACTIVE).update(
        state=BlobUpload.State.DONE, tail=b"", tail_size=0, leased_until=None
    )
    if not done:
        raise BlobUploadUnknown("the upload session was closed after idling past the timeout", detail={"uuid": str(upload.pk)})


def blob_upload_monolithic(*, tenant: Tenant, repository: Repository, digest: str, body: Body) -> Blob:
    """POST ?digest= with the whole blob. A blob the tenant already has is only hashed, not stored again."""
    existing = selectors.blob_get(tenant=tenant, digest=digest)
    if existing is not None:
        # Restart the blob's GC grace period before reading the body, so GC leaves it alone meanwhile.
        Blob.objects.filter(pk=existing.pk, gc_candidate_since__isnull=False).update(gc_candidate_since=None)
        algorithm = digest_algorithm(digest)
        hasher = ResumableHasher(algorithms=(algorithm,))
        received = _hash_only(body, hasher)
        if hasher.digest(algorithm) != digest:
            raise DigestInvalid(detail={"expected": digest, "actual": hasher.digest(algorithm)})
        if received != existing.size:
            raise SizeInvalid()
        linked = _link(tenant=tenant, repository=repository, digest=digest, upload=None)
        if linked is None:
            # GC removed it while the body arrived (only possible with a zero grace period); we kept no bytes.
            raise StorageUnavailableError(
                "the blob was garbage-collected while it was being sent; send it again", headers={"Retry-After": "1"}
            )
        return linked
    # The digest names the algorithm: hash only that one.
    upload = blob_upload_start(tenant=tenant, repository=repository, algorithms=(digest_algorithm(digest),))
    return blob_upload_finish(tenant=tenant, repository=repository, upload_id=upload.pk, digest=digest, body=body)


def _hash_only(body: Body, hasher: ResumableHasher) -> int:
    total = 0
    remaining = body.length
    while remaining is None or remaining > 0:
        chunk = body.reader.read(1024 * 1024 if remaining is None else min(1024 * 1024, remaining))
        if not chunk:
            if remaining is not None:
                raise SizeInvalid(f"expected {body.length} bytes, got {total}")
            break
        hasher.update(chunk)
        total += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return total


def blob_upload_cancel(*, tenant: Tenant, repository: Repository, upload_id: uuid.UUID) -> None:
    """DELETE: abort the session, its multipart upload and its tail object."""
    store = store_for(tenant)
    with _leased(tenant=tenant, repository=repository, upload_id=upload_id) as upload:
        _discard(upload, store, multipart_id=upload.multipart_id)


def blob_mount(*, tenant: Tenant, repository: Repository, source: Repository, digest: str) -> Blob | None:
    """Link a blob from another repository of the same tenant; None when `source` lacks it."""
    blob = selectors.blob_get_linked(tenant=tenant, repository=source, digest=digest)
    if blob is None:
        return None
    # None when GC took it meanwhile: the caller then opens a normal upload session.
    return _link(tenant=tenant, repository=repository, digest=digest, upload=None)


def blob_unlink(*, tenant: Tenant, repository: Repository, digest: str, actor: str = "", ip: str | None = None) -> None:
    """DELETE a blob from a repository: the link goes; GC reclaims the bytes later."""
    blob = selectors.blob_get_linked(tenant=tenant, repository=repository, digest=digest)
    if blob is None:
        raise BlobUnknown(detail={"digest": digest})
    used_by = (
        ManifestBlob.objects.filter(blob=blob, manifest__repository=repository).values_list("manifest__digest", flat=True).first()
    )
    if used_by:
        raise Denied(f"blob is referenced by manifest {used_by} in this repository; delete the manifest first")
    with transaction.atomic():
        RepositoryBlob.objects.filter(tenant=tenant, repository=repository, blob=blob).delete()
        audit_record(action="blob.delete", actor=actor, tenant=tenant, target=f"{repository.name}@{digest}", ip=ip)
