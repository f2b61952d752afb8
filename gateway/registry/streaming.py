"""Stream request bytes into S3 multipart parts while hashing them.

Reading the socket and writing to storage overlap: full parts go to a small shared thread
pool while the next part fills. Memory per upload is bounded by (1 + inflight) parts. The
part buffer is a bytearray handed to boto3 as is (no copy); it grows to exactly the part
size, so every part but the last is one Storj segment (64 MiB by default, docs/storj.md §7).

Memory per process is bounded too, across all uploads: a part buffer is backed by a
reservation from the process's `MemoryBudget` (GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES), taken
before its first byte is read and returned when the part is in S3 (or the bytes are handed
back as a tail). While the budget is used up, an upload waits its turn and does not read its
socket (back-pressure on the client). A reservation covers its whole part (or the rest of a
body of known length), so whoever holds one can always finish its part: no deadlock
(docs/decisions/0010).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from gateway.registry.digests import ResumableHasher
from gateway.registry.errors import StorageUnavailableError
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


class MemoryBudget:
    """A cap on bytes held in part buffers by one process; `acquire` waits its turn (first come, first served)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    def acquire(self, n: int, *, timeout: float) -> bool:
        """Take `n` bytes (at most the whole budget), waiting up to `timeout` s; False when that was not enough."""
        n = min(n, self.limit)
        ticket = object()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.used + n > self.limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                self.used += n
                self.peak = max(self.peak, self.used)
                return True
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, n: int) -> None:
        """Give back `n` bytes taken with `acquire`."""
        if n <= 0:
            return
        with self._cond:
            self.used -= n
            self._cond.notify_all()


_budget: MemoryBudget | None = None


def upload_budget() -> MemoryBudget:
    """This process's budget for part buffers (GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES)."""
    global _budget
    with _pool_lock:
        if _budget is None:
            from django.conf import settings

            _budget = MemoryBudget(settings.GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES)
        return _budget


def upload_budget_stats() -> tuple[int, int, int] | None:
    """(peak, used, limit) bytes of this process's budget; None when no upload has used it yet."""
    budget = _budget
    return None if budget is None else (budget.peak, budget.used, budget.limit)


def _give_back(budget: MemoryBudget, held: list[int]) -> None:
    budget.release(held[0])
    held[0] = 0


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
        hasher: ResumableHasher,
        on_multipart_start: Callable[[str], None],
        on_part_submitted: Callable[[], None] | None = None,
        inflight: int = 1,
        pool_workers: int = 8,
        budget: MemoryBudget | None = None,
        budget_wait: float | None = None,
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
        self._budget = budget or upload_budget()
        if budget_wait is None:
            from django.conf import settings

            budget_wait = float(settings.GATEWAY_UPLOAD_MEMORY_WAIT_SECONDS)
        self._budget_wait = budget_wait
        # Bytes reserved for the buffer. A list, so the finalizer can give back what is held when
        # a writer is dropped without checkpoint/flush/abandon (the small-blob put, an error path).
        self._held = [0]
        weakref.finalize(self, _give_back, self._budget, self._held)

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
            want = min(READ_CHUNK, want)
            if len(self.buffer) + want > self._held[0]:
                self._reserve(remaining)
            chunk = reader.read(want)
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

    def _reserve(self, remaining: int | None) -> None:
        """Hold budget for the buffer up to the end of its part, or of this body if that comes first.

        Taken in one piece while holding nothing for the buffer (a carried-over tail is counted in
        it): a writer never holds part of a reservation while it waits for the rest, so writers
        cannot block each other.
        """
        need = self.part_size if remaining is None else min(self.part_size, len(self.buffer) + remaining)
        more = min(need, self._budget.limit) - self._held[0]
        if more <= 0:
            return
        if not self._budget.acquire(more, timeout=self._budget_wait):
            raise StorageUnavailableError(
                "the registry is busy: upload memory is in use by other uploads, retry later", headers={"Retry-After": "10"}
            )
        self._held[0] += more

    def _release_held(self) -> None:
        _give_back(self._budget, self._held)

    def _ensure_multipart(self) -> None:
        if not self.multipart_id:
            self.multipart_id = self.store.multipart_start(self.key)
            self._on_multipart_start(self.multipart_id)

    def _submit(self) -> None:
        self._ensure_multipart()
        data, self.buffer = self.buffer, bytearray()
        # The part takes its bytes of the reservation along; they come back once it is in S3.
        reserved = min(self._held[0], len(data))
        self._budget.release(self._held[0] - reserved)
        self._held[0] = 0
        number = self._next_part_number()
        budget = self._budget
        try:
            self._slots.acquire()
        except BaseException:
            budget.release(reserved)
            raise

        def upload() -> str:
            try:
                return self.store.multipart_put_part(self.key, self.multipart_id, number, data)
            finally:
                self._slots.release()
                budget.release(reserved)

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
        # The caller stores the tail with the session; it stays reserved until this writer is dropped.
        keep = min(self._held[0], len(tail))
        self._budget.release(self._held[0] - keep)
        self._held[0] = keep
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
        self._release_held()
