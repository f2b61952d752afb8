"""What an upload session may carry and keep: its sub-part tail (row or object, decisions/0012) and the tenant's storage quota."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Sum

from accounts.limits import billing_url
from accounts.models import Tenant
from gateway.registry import locks, selectors
from gateway.registry.errors import Denied, TooManyRequests
from gateway.registry.models import BlobUpload
from gateway.registry.streaming import Reader
from gateway.storage import BlobStore, StorageError, keys
from gateway.storage.base import MIN_PART_SIZE

log = logging.getLogger("gateway.registry.services.uploads")  # the uploads' own log, where operators look


def range_headers(upload: BlobUpload) -> dict[str, str]:
    """The `Range` header a client needs to resume the session."""
    return {"Range": upload.range}


def tail_read(upload: BlobUpload, store: BlobStore) -> bytes:
    """The session's carried tail, from its row or its tail object (at most one tail of egress)."""
    if not upload.tail_key:
        return bytes(upload.tail)
    tail = b"".join(store.open_read(upload.tail_key))
    if len(tail) != upload.tail_size:
        raise StorageError(f"tail object {upload.tail_key} holds {len(tail)} bytes, the session recorded {upload.tail_size}")
    return tail


def tail_drop(upload: BlobUpload, store: BlobStore, key: str | None = None) -> None:
    """Delete a tail object no row points at any more; a failure only leaves it for the sweep (tail_spilled)."""
    key = upload.tail_key if key is None else key
    if key:
        try:
            store.delete([key])
        except StorageError:
            log.warning("could not delete tail object %s; the upload sweep will", key)


def tail_check(*, tenant: Tenant, upload: BlobUpload, length: int | None) -> None:
    """429 when the tail this PATCH may leave would take the tenant's carried tail bytes past the cap."""
    cap = settings.GATEWAY_UPLOAD_MAX_TAIL_BYTES
    # A tail is always below the minimum part size; with a known length it is at most old tail + length.
    worst = MIN_PART_SIZE - 1 if length is None else min(upload.tail_size + length, MIN_PART_SIZE - 1)
    others = (
        BlobUpload.objects.filter(tenant=tenant, state=BlobUpload.State.ACTIVE)
        .exclude(pk=upload.pk)
        .aggregate(s=Sum("tail_size"))["s"]
        or 0
    )
    if others + worst > cap:
        raise TooManyRequests(
            f"too many upload bytes in flight: the tenant's open upload sessions carry {others} bytes of tails, "
            f"this chunk may add {worst}, the limit is {cap}; finish or cancel other uploads first",
            detail={"limit": "upload_tail_bytes", "tail_bytes": others, "max_tail_bytes": cap},
            headers=range_headers(upload),
        )


def tail_keep(*, tenant: Tenant, upload: BlobUpload, store: BlobStore, tail: bytes) -> None:
    """Carry `tail` to the next request: in the row when small, else in a new tail object (the row is saved by the caller)."""
    if len(tail) > settings.GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES:
        old_tail_key = upload.tail_key
        # A new key per offset: until the caller's row update commits, the old state (and its tail) stays intact.
        upload.tail_key = keys.upload_tail_key(tenant.pk, upload.pk, upload.offset)
        if not upload.tail_spilled:
            # Recorded before the first object exists, so the sweep finds it even if we die right after the PUT.
            BlobUpload.objects.filter(pk=upload.pk).update(tail_spilled=True)
            upload.tail_spilled = True
        if upload.tail_key != old_tail_key:
            store.put(upload.tail_key, tail)
        upload.tail = b""
    else:
        upload.tail, upload.tail_key = tail, ""
    upload.tail_size = len(tail)


def quota_get(*, tenant: Tenant) -> int | None:
    """The tenant's storage quota in bytes as stored now (None: unlimited)."""
    return Tenant.objects.filter(pk=tenant.pk).values_list("storage_quota_bytes", flat=True).first()


def _over_quota(*, tenant: Tenant, quota: int, used: int, needed: int, what: str) -> Denied:
    """The one refusal of the storage quota: names it, its limit, the usage and where to raise it (docs/decisions/0039)."""
    url = billing_url(tenant=tenant)
    return Denied(
        f"storage quota exceeded: {what}; {tenant.slug!r} stores {used} of its {quota}-byte storage quota "
        f"({max(quota - used, 0)} bytes left); delete images or raise the quota at {url}",
        detail={"quota": "storage", "limit_bytes": quota, "used_bytes": used, "needed_bytes": needed, "billing_url": url},
    )


def quota_enforce(*, tenant: Tenant, quota: int, size: int, what: str = "") -> None:
    """DENIED, naming the storage quota, when new bytes of `size` (a blob, a manifest) do not fit."""
    used = selectors.usage_bytes(tenant=tenant)
    if used + size > quota:
        raise _over_quota(tenant=tenant, quota=quota, used=used, needed=size, what=what or f"this blob needs {size} bytes")


def quota_start_check(*, tenant: Tenant) -> None:
    """Fail fast: DENIED when the tenant is already at or over its storage quota (no new upload session can fit)."""
    quota = quota_get(tenant=tenant)
    if quota is None:
        return
    used = selectors.usage_bytes(tenant=tenant)
    if used >= quota:
        raise _over_quota(tenant=tenant, quota=quota, used=used, needed=1, what="no room for a new upload")


def quota_new_bytes_check(*, tenant: Tenant, size: int, what: str) -> None:
    """Under the tenant's quota row lock (registry/locks.py order: after the object keys), DENIED when `size` new bytes do not fit."""
    if quota_get(tenant=tenant) is None:
        return
    quota = locks.tenant_quota_for_update(tenant=tenant)
    if quota is not None:
        quota_enforce(tenant=tenant, quota=quota, size=size, what=what)


class QuotaReader:
    """A body reader that refuses (DENIED) the first read taking the upload session past the tenant's room.

    The room (quota − bytes stored) is read at the start and again at every part boundary, so a stream goes on
    at most one part after concurrent pushes of the tenant filled the quota (their commits are exact: locks).
    """

    def __init__(self, reader: Reader, *, tenant: Tenant, quota: int, offset: int, part_size: int) -> None:
        self._reader, self._tenant, self._quota, self._part_size = reader, tenant, quota, part_size
        self.total = offset
        self._used = selectors.usage_bytes(tenant=tenant)
        self._next_check = offset + part_size

    def refuse_if_over(self, size: int) -> None:
        """DENIED if the session would hold `size` more bytes than fit."""
        if self.total + size > self._quota - self._used:
            raise _over_quota(
                tenant=self._tenant,
                quota=self._quota,
                used=self._used,
                needed=self.total + size,
                what=f"this upload reaches {self.total + size} bytes",
            )

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._reader.read(size)
        if self.total + len(chunk) >= self._next_check:
            self._used = selectors.usage_bytes(tenant=self._tenant)
            self._next_check += self._part_size
        self.refuse_if_over(len(chunk))
        self.total += len(chunk)
        return chunk


def quota_reader(
    *, tenant: Tenant, upload: BlobUpload, reader: Reader, length: int | None, part_size: int, digest: str = ""
) -> Reader:
    """`reader`, checked against the storage quota as its bytes arrive (unchanged without a quota, or when `digest`
    is a blob the tenant already stores: it costs nothing new); a body whose announced length cannot fit is refused
    before a byte of it is read."""
    quota = quota_get(tenant=tenant)
    if quota is None or (digest and selectors.blob_get(tenant=tenant, digest=digest) is not None):
        return reader
    checked = QuotaReader(reader, tenant=tenant, quota=quota, offset=upload.offset, part_size=part_size)
    if length:
        checked.refuse_if_over(length)
    return checked
