"""Stream request bytes into S3 multipart parts while hashing them.

Reading the socket and writing to storage overlap: full parts go to a small shared thread
pool while the next part fills. Memory per upload is bounded by (1 + inflight) parts. The
part buffer is a bytearray handed to boto3 as is (no copy); it grows to exactly the part
size, so every part but the last is one Storj segment (64 MiB by default).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from gateway.registry.digests import ResumableSha256
from gateway.storage import BlobStore
from gateway.storage.base import MIN_PART_SIZE

READ_CHUNK = 1024 * 1024
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor(max_workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3-part")
        return _pool


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ShortRead(Exception):
    """The client sent fewer bytes than it announced."""


class PartWriter:
    """Accumulates bytes into parts and uploads full parts in the background."""

    def __init__(
        self,
        *,
        store: BlobStore,
        key: str,
        multipart_id: str,
        parts: list[list],
        tail: bytes,
        hasher: ResumableSha256,
        on_multipart_start: Callable[[str], None],
        on_part_submitted: Callable[[], None] | None = None,
        inflight: int = 1,
        pool_workers: int = 8,
    ) -> None:
        self.store = store
        self.key = key
        self.multipart_id = multipart_id
        self.parts = [list(p) for p in parts]  # [number, etag, size]
        self.buffer = bytearray(tail)
        self.hasher = hasher
        self._on_multipart_start = on_multipart_start
        self._on_part_submitted = on_part_submitted
        self._slots = threading.Semaphore(max(1, inflight))
        self._futures: list[tuple[int, int, Future]] = []
        self._pool = _executor(pool_workers)
        self.received = 0

    @property
    def part_size(self) -> int:
        return self.store.part_size

    def _next_part_number(self) -> int:
        used = [p[0] for p in self.parts] + [n for n, _, _ in self._futures]
        return max(used, default=0) + 1

    def consume(self, reader: Reader, length: int | None) -> int:
        """Read `length` bytes (or to EOF when None) from reader; returns bytes read."""
        remaining = length
        total = 0
        while remaining is None or remaining > 0:
            want = self.part_size - len(self.buffer)
            if remaining is not None:
                want = min(want, remaining)
            chunk = reader.read(min(READ_CHUNK, want))
            if not chunk:
                if remaining is not None:
                    raise ShortRead(f"expected {length} bytes, got {total}")
                break
            self.hasher.update(chunk)
            self.buffer += chunk
            total += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
            if len(self.buffer) >= self.part_size:
                self._submit()
        self.received += total
        return total

    def _ensure_multipart(self) -> None:
        if not self.multipart_id:
            self.multipart_id = self.store.multipart_start(self.key)
            self._on_multipart_start(self.multipart_id)

    def _submit(self) -> None:
        self._ensure_multipart()
        data, self.buffer = self.buffer, bytearray()
        number = self._next_part_number()
        self._slots.acquire()

        def upload() -> str:
            try:
                return self.store.multipart_put_part(self.key, self.multipart_id, number, data)
            finally:
                self._slots.release()

        self._futures.append((number, len(data), self._pool.submit(upload)))
        if self._on_part_submitted:
            self._on_part_submitted()

    def wait(self) -> None:
        """Wait for every submitted part; record it, or raise the first failure."""
        error: BaseException | None = None
        for number, size, fut in self._futures:
            try:
                etag = fut.result()
            except BaseException as exc:  # keep waiting for the rest, then raise
                error = error or exc
                continue
            self.parts.append([number, etag, size])
        self._futures = []
        self.parts.sort()
        if error is not None:
            raise error

    def checkpoint(self) -> bytes:
        """End of a request: ship the buffer as a part if S3 allows it, else return it as tail."""
        if len(self.buffer) >= MIN_PART_SIZE:
            self._submit()
        self.wait()
        tail, self.buffer = bytes(self.buffer), bytearray()
        return tail

    def flush_last_part(self) -> None:
        """Finishing a multipart upload: whatever is buffered becomes the last part (any size)."""
        if self.buffer or not (self.parts or self._futures):
            self._submit()
        self.wait()

    def abandon(self) -> None:
        """A request failed: let in-flight parts finish (their results are not recorded)."""
        for _, _, fut in self._futures:
            try:
                fut.result()
            except BaseException:
                pass
        self._futures = []
