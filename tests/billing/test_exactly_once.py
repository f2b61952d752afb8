"""The meter counts every pull once: a flush that is retried, two flushes at once, a worker killed with SIGKILL mid-flush.

Real Redis and PostgreSQL; the last test runs a real Celery worker process and kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time

import psycopg
import pytest
from django.db import DatabaseError, connection

from billing.models import UsageRecord
from gateway.registry.models import EventBatch, UsageEvent
from gateway.registry.services import events, stream
from gateway.registry.services.stream import events_flush
from gateway.tasks import usage_flush_task
from tests import helpers
from tests.helpers import celery_worker, sha

OCI = "application/vnd.oci.image.manifest.v1+json"
KEYS = (events.QUEUE_KEY, stream.PROCESSING_KEY, stream.BATCH_KEY)
LAYER = b"a layer of known size " * 1000


@pytest.fixture(autouse=True)
def _empty_queue(redis_client):
    redis_client.delete(*KEYS)
    yield
    redis_client.delete(*KEYS)


def _pulls(reg, times: int) -> int:
    """An image pushed (its push events delivered), then `times` pulls of its manifest and layer; the egress they make."""
    _, payload = reg.push_image("app", "1", [LAYER])
    events_flush()
    for _ in range(times):
        assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).status_code == 200
        assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(LAYER)}").streaming_content) == LAYER
    return times * (len(payload) + len(LAYER))


def _metered(tenant) -> tuple[int, int]:
    [row] = UsageRecord.objects.filter(tenant=tenant, repository="app")
    return row.pulls, row.egress_proxied_bytes


def _fail_once(monkeypatch, error: BaseException) -> list[int]:
    """A subscriber delivered after billing's that raises `error` on its first batch only (rolling billing's work back)."""
    calls: list[int] = []

    def handler(*, batch, events):
        calls.append(len(events))
        if len(calls) == 1:
            raise error

    types = frozenset({("manifest", "pull")})
    monkeypatch.setitem(events._subscriptions, "zz-test", events.Subscription(name="zz-test", types=types, handler=handler))
    return calls


@pytest.mark.django_db
def test_a_flush_task_retried_after_a_failure_counts_once(reg, tenant, monkeypatch, redis_client):
    egress = _pulls(reg, 3)
    calls = _fail_once(monkeypatch, DatabaseError("the database went away mid-batch"))
    usage_flush_task.apply(kwargs={"max_items": 100})  # fails, is retried (eagerly here) and then delivers
    assert len(calls) == 2
    assert _metered(tenant) == (3, egress)
    assert redis_client.exists(stream.PROCESSING_KEY) == 0
    assert usage_flush_task(max_items=100) == 0
    assert _metered(tenant) == (3, egress)


@pytest.mark.django_db
def test_a_flush_redelivered_after_its_commit_counts_once(reg, tenant, redis_client):
    """acks_late: the worker committed, then died before acknowledging; the message and the batch come back."""
    egress = _pulls(reg, 2)
    raw = redis_client.lrange(events.QUEUE_KEY, 0, -1)
    assert usage_flush_task(max_items=100) == len(raw) == 4
    batch = UsageEvent.objects.filter(tenant=tenant, direction="pull").values_list("batch", flat=True).first()
    redis_client.rpush(stream.PROCESSING_KEY, *raw)
    redis_client.set(stream.BATCH_KEY, str(batch))
    assert usage_flush_task(max_items=100) == len(raw)  # the same batch, delivered to nobody
    assert _metered(tenant) == (2, egress)


@pytest.mark.django_db(transaction=True)
def test_two_flushes_at_once_count_once(reg, tenant, monkeypatch):
    egress = _pulls(reg, 4)
    inside, go = threading.Event(), threading.Event()

    def hold(*, batch, events):  # keeps the first flush's transaction open until the second waits on it
        if not inside.is_set():
            inside.set()
            assert go.wait(timeout=30)

    monkeypatch.setitem(
        events._subscriptions, "zz-hold", events.Subscription(name="zz-hold", types=frozenset({("blob", "pull")}), handler=hold)
    )
    taken: list[int] = []

    def flush() -> None:
        try:
            taken.append(events_flush())
        finally:
            connection.close()

    first = threading.Thread(target=flush)
    first.start()
    assert inside.wait(timeout=30)
    second = threading.Thread(target=flush)
    second.start()
    with psycopg.connect(helpers.test_database_url(), autocommit=True) as watcher:
        _wait_for(lambda: _lock_waiters(watcher), "the second flush to wait on the first")
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert taken == [8, 8]  # both claimed the same batch ...
    assert _metered(tenant) == (4, egress)  # ... and it was counted once
    assert EventBatch.objects.count() == 2  # the pushes' batch and this one


def _lock_waiters(conn: psycopg.Connection, relation: str | None = None) -> list[int]:
    """Backends of the test database waiting for a lock (on `relation`, if given)."""
    sql = "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()"
    params: list[str] = []
    if relation:
        sql += " AND l.relation = %s::regclass"
        params.append(relation)
    return [row[0] for row in conn.execute(sql, params).fetchall()]


def _wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_flush_loses_nothing_and_counts_once(reg, tenant, redis_client):
    """A real worker is stopped inside the delivery transaction (billing's table locked), SIGKILLed, and the batch replayed."""
    egress = _pulls(reg, 3)
    queued = redis_client.llen(events.QUEUE_KEY)
    table = UsageRecord._meta.db_table
    log = tempfile.NamedTemporaryFile(prefix="wharf-worker-", suffix=".log", delete=False)  # noqa: SIM115  (the worker writes it)
    worker: subprocess.Popen | None = None
    with (
        psycopg.connect(helpers.test_database_url(), autocommit=True) as watcher,
        psycopg.connect(helpers.test_database_url()) as locker,
    ):
        try:
            locker.execute(f"LOCK TABLE {table} IN SHARE MODE")  # the fold's INSERT waits here, mid-transaction
            # Stale messages on the broker's `celery` queue (an earlier test's re-queued flush of another size) go
            # first: the worker must take this test's flush, not claim a batch of someone else's max_items.
            redis_client.delete("celery")
            worker = celery_worker("celery", log)
            usage_flush_task.delay(max_items=100)
            [pid] = _wait_for(lambda: _lock_waiters(watcher, table), "the worker's flush to reach billing's fold", timeout=60)
            assert redis_client.llen(stream.PROCESSING_KEY) == queued  # claimed, not acknowledged
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            locker.rollback()  # the killed worker's backend gets the lock, finds its client gone, rolls back
            _wait_for(
                lambda: not watcher.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone(),
                "the backend to end",
            )
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
    try:
        assert not UsageRecord.objects.filter(tenant=tenant).exists(), _tail(log.name)
        assert not UsageEvent.objects.filter(tenant=tenant, direction="pull").exists()  # the usage rows rolled back too
        assert redis_client.llen(stream.PROCESSING_KEY) == queued  # still claimed: nothing lost
        assert events_flush() == queued  # the same batch, replayed
        assert events_flush() == 0
        assert _metered(tenant) == (3, egress)
        assert UsageEvent.objects.filter(tenant=tenant, direction="pull").count() == queued
    finally:
        log.close()
        os.unlink(log.name)


def _tail(path: str) -> str:
    with open(path, errors="replace") as f:
        return "worker log:\n" + f.read()[-4000:]


@pytest.mark.django_db
def test_pulls_queued_by_the_limit_script_are_metered_once_and_refused_ones_not_at_all(reg, tenant, monkeypatch, redis_client):
    """A limited tenant's served GETs are queued by the window script (decision 0047); the stream meters them once."""
    from accounts.limits import TenantLimits
    from accounts.services import tenant_limits_set
    from gateway.registry import access

    _, payload = reg.push_image("app", "1", [LAYER])
    events_flush()
    tenant_limits_set(tenant=tenant, limits=TenantLimits(pulls_per_window_authenticated=3))
    access.caches_clear()
    statuses = [reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert redis_client.llen(events.QUEUE_KEY) == 3  # the served ones only, each once
    calls = _fail_once(monkeypatch, DatabaseError("the database went away mid-batch"))
    usage_flush_task.apply(kwargs={"max_items": 100})  # fails once, is retried, delivers the same batch
    assert len(calls) == 2
    assert _metered(tenant) == (3, 3 * len(payload))
    assert usage_flush_task(max_items=100) == 0
    assert _metered(tenant) == (3, 3 * len(payload))
