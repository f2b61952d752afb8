"""PartWriter under the process-wide upload memory budget, against the session's SeaweedFS (decisions/0010)."""

from __future__ import annotations

import gc
import hashlib
import io
import random
import threading
import uuid

import pytest

from gateway.registry.digests import ResumableHasher
from gateway.registry.errors import StorageUnavailableError
from gateway.registry.streaming import MemoryBudget, PartWriter
from gateway.storage.s3 import S3BlobStore, S3Config

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def store(s3_server, settings) -> S3BlobStore:
    return S3BlobStore(S3Config.from_settings({**settings.GATEWAY_S3, "part_size": PART}))


class Trickle(io.RawIOBase):
    """A body that hands out at most 256 KiB per read, like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(min(size if size >= 0 else 1 << 30, 256 * 1024))


def _writer(store: S3BlobStore, key: str, budget: MemoryBudget, tail: bytes = b"", wait: float = 60) -> PartWriter:
    return PartWriter(
        store=store,
        key=key,
        multipart_id="",
        parts=[],
        tail=tail,
        hasher=ResumableHasher(),
        on_multipart_start=lambda _id: None,
        budget=budget,
        budget_wait=wait,
    )


def _read_back(store: S3BlobStore, key: str) -> bytes:
    return b"".join(store.open_read(key))


@pytest.mark.parametrize("limit_parts", [1, 3])
def test_concurrent_writers_share_the_budget_without_deadlock(store: S3BlobStore, limit_parts: int) -> None:
    """16 writers of 3.5 parts each, read to EOF (a chunked body): all byte-identical, the budget never exceeded."""
    budget = MemoryBudget(limit_parts * PART)
    payloads = {i: random.Random(i).randbytes(3 * PART + PART // 2) for i in range(16)}
    keys = {i: f"t/0/uploads/{uuid.uuid4()}" for i in payloads}
    errors: list[BaseException] = []

    def push(i: int) -> None:
        try:
            writer = _writer(store, keys[i], budget)
            writer.consume(Trickle(payloads[i]), None)
            writer.flush_last_part()
            store.multipart_complete(keys[i], writer.multipart_id, [(p[0], p[1]) for p in writer.parts])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    try:
        assert not any(t.is_alive() for t in threads), "writers deadlocked on the budget"
        assert not errors, errors
        assert budget.peak <= budget.limit
        assert budget.peak >= PART  # the budget was actually in use
        gc.collect()
        assert budget.used == 0  # every reservation came back
        for i, key in keys.items():
            assert hashlib.sha256(_read_back(store, key)).digest() == hashlib.sha256(payloads[i]).digest()
    finally:
        store.delete(list(keys.values()))


def test_a_writer_that_cannot_get_budget_answers_503_and_holds_nothing(store: S3BlobStore) -> None:
    budget = MemoryBudget(PART)
    assert budget.acquire(PART, timeout=1)  # everything is taken
    writer = _writer(store, f"t/0/uploads/{uuid.uuid4()}", budget, wait=0.2)
    with pytest.raises(StorageUnavailableError) as err:
        writer.consume(Trickle(b"x" * MiB), MiB)
    assert err.value.status == 503 and "Retry-After" in err.value.headers
    writer.abandon()
    assert budget.used == PART  # only the holder's bytes
    budget.release(PART)
    assert budget.used == 0


def test_a_tail_is_reserved_until_the_writer_is_gone(store: S3BlobStore) -> None:
    """A request's sub-part tail is stored with the session after checkpoint; its bytes stay counted until then."""
    budget = MemoryBudget(3 * PART)
    writer = _writer(store, f"t/0/uploads/{uuid.uuid4()}", budget, tail=b"t" * 1000)
    writer.consume(Trickle(b"x" * (2 * MiB)), 2 * MiB)
    assert budget.used == 1000 + 2 * MiB  # the carried-over tail and the body, in one reservation
    tail = writer.checkpoint()
    assert len(tail) == 1000 + 2 * MiB
    assert budget.used == len(tail)
    del writer
    gc.collect()
    assert budget.used == 0


def _until(condition, seconds: float = 10) -> None:
    done = threading.Event()
    for _ in range(int(seconds * 100)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition never held")


def test_budget_turns_are_first_come_first_served() -> None:
    """A large request waiting for room is not overtaken by later small ones (it would starve)."""
    budget = MemoryBudget(10)
    assert budget.acquire(8, timeout=1)
    order: list[str] = []
    big = threading.Thread(target=lambda: budget.acquire(10, timeout=30) and order.append("big"))
    big.start()
    _until(lambda: len(budget._queue) == 1)  # the big one is waiting
    small = threading.Thread(target=lambda: budget.acquire(1, timeout=30) and order.append("small"))
    small.start()
    _until(lambda: len(budget._queue) == 2)  # 2 bytes are free, yet the small one queues behind the big one
    assert (order, budget.used) == ([], 8)
    budget.release(8)
    big.join(10)
    assert order == ["big"]
    budget.release(10)
    small.join(10)
    assert order == ["big", "small"]
