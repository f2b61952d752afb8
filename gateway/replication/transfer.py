"""Streaming, verified copies between two BlobStores, and streaming re-hashes.

Content is addressed by digest (sha256 or sha512), so a copy is verified while it streams: the
bytes are hashed with the digest's algorithm as they pass and the destination object is only completed when size and digest match the
expected ones (a multipart upload is aborted otherwise; a small object is never PUT). Memory
is bounded by one destination part (the store's `part_size`, 64 MiB by default) plus one
read chunk. Only the BlobStore interface is used, never boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.registry.digests import HEX_LENGTHS, new_hasher
from gateway.replication.ratelimit import RequestPacer
from gateway.storage import BlobStore, StorageError, StorageUnavailable


class TransferError(Exception):
    """A copy or re-hash could not prove the content (base class)."""


class SourceMissing(TransferError):
    """The object to read does not exist."""


class ContentMismatch(TransferError):
    """The bytes read are not the expected ones (size or digest)."""

    def __init__(self, message: str, *, actual_size: int, actual_digest: str | None) -> None:
        super().__init__(message)
        self.actual_size = actual_size
        self.actual_digest = actual_digest


@dataclass(frozen=True)
class Hashed:
    size: int
    digest: str


def _check_digest(digest: str) -> str:
    """The digest's algorithm; ValueError unless it is `sha256:`/`sha512:` with hex of the right length."""
    algo, _, hexpart = digest.partition(":")
    if algo not in HEX_LENGTHS or len(hexpart) != HEX_LENGTHS[algo]:
        raise ValueError(f"only sha256 and sha512 digests can be verified, got {digest[:80]!r}")
    return algo


def _open(store: BlobStore, key: str, pacer: RequestPacer | None) -> Iterator[bytes]:
    if pacer:
        pacer.acquire()
    try:
        return store.open_read(key)
    except StorageUnavailable:
        raise
    except StorageError:
        if pacer:
            pacer.acquire()
        if store.stat(key) is None:
            raise SourceMissing(f"{store.bucket}/{key} does not exist") from None
        raise


def rehash(store: BlobStore, key: str, *, expected: str, pacer: RequestPacer | None = None) -> Hashed:
    """Download an object as a stream and return its size and digest, by the algorithm of the `expected` digest (nothing held whole)."""
    algorithm = _check_digest(expected)
    h = new_hasher(algorithm)
    size = 0
    for chunk in _open(store, key, pacer):
        h.update(chunk)
        size += len(chunk)
    return Hashed(size=size, digest=f"{algorithm}:{h.hexdigest()}")


class _Verifier:
    """Hashes a copy's bytes as they pass and proves them against the expected size and digest."""

    def __init__(self, *, where: str, size: int, digest: str) -> None:
        self.where, self.size, self.digest = where, size, digest
        self.algorithm = _check_digest(digest)
        self.hasher = new_hasher(self.algorithm)
        self.received = 0

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.size:
            raise ContentMismatch(
                f"{self.where} has more than the expected {self.size} bytes", actual_size=self.received, actual_digest=None
            )
        self.hasher.update(chunk)

    def verify(self) -> None:
        actual = f"{self.algorithm}:{self.hasher.hexdigest()}"
        if self.received != self.size or actual != self.digest:
            raise ContentMismatch(
                f"{self.where} is {self.received} bytes with digest {actual}, expected {self.size} bytes with {self.digest}",
                actual_size=self.received,
                actual_digest=actual,
            )


def copy_verified(
    *,
    source: BlobStore,
    source_key: str,
    dest: BlobStore,
    dest_key: str,
    size: int,
    digest: str,
    pacer: RequestPacer | None = None,
    on_multipart_start: Callable[[str], None] | None = None,
    on_part: Callable[[], None] | None = None,
) -> None:
    """Stream source_key to dest_key; the destination is completed only if size and digest (its own algorithm) match.

    Raises SourceMissing, ContentMismatch (nothing written at dest_key), or StorageError.
    Objects up to dest.part_size go in one PUT, larger ones as a multipart upload whose id
    is handed to `on_multipart_start` first, so a caller can abort it after a crash.
    """
    verifier = _Verifier(where=f"{source.bucket}/{source_key}", size=size, digest=digest)
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    chunks = _open(source, source_key, pacer)
    if size <= dest.part_size:
        _copy_small(chunks, verifier, dest, dest_key, pacer)
    else:
        _copy_multipart(chunks, verifier, dest, dest_key, pacer, on_multipart_start=on_multipart_start, on_part=on_part)


def _copy_small(chunks: Iterator[bytes], verifier: _Verifier, dest: BlobStore, dest_key: str, pacer: RequestPacer | None) -> None:
    """One PUT, sent only once the bytes are proven."""
    buf = bytearray()
    try:
        for chunk in chunks:
            verifier.feed(chunk)
            buf += chunk
    finally:
        _close(chunks)
    verifier.verify()
    if pacer:
        pacer.acquire()
    dest.put(dest_key, bytes(buf))


def _copy_multipart(
    chunks: Iterator[bytes],
    verifier: _Verifier,
    dest: BlobStore,
    dest_key: str,
    pacer: RequestPacer | None,
    *,
    on_multipart_start: Callable[[str], None] | None,
    on_part: Callable[[], None] | None,
) -> None:
    """Parts of dest.part_size, completed only once the bytes are proven; aborted on any failure."""
    part_size = dest.part_size
    if pacer:
        pacer.acquire()
    upload_id = dest.multipart_start(dest_key)
    try:
        if on_multipart_start:
            on_multipart_start(upload_id)
        parts: list[tuple[int, str]] = []
        buf = bytearray()

        def flush() -> None:
            nonlocal buf
            if pacer:
                pacer.acquire()
            parts.append((len(parts) + 1, dest.multipart_put_part(dest_key, upload_id, len(parts) + 1, buf)))
            buf = bytearray()
            if on_part:
                on_part()

        try:
            for chunk in chunks:
                verifier.feed(chunk)
                view = memoryview(chunk)
                while view:
                    take = min(part_size - len(buf), len(view))
                    buf += view[:take]
                    view = view[take:]
                    if len(buf) == part_size:
                        flush()
        finally:
            _close(chunks)
        verifier.verify()
        if buf or not parts:
            flush()
        if pacer:
            pacer.acquire()
        dest.multipart_complete(dest_key, upload_id, parts)
    except BaseException:
        try:
            dest.multipart_abort(dest_key, upload_id)
        except StorageError:
            pass  # the caller recorded the id; the next attempt aborts it again
        raise


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close:
        close()
