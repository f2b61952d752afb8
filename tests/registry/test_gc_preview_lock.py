"""A preview (GC's dry run: marks as UPDATEs, rolled back) and a real run never make each other skip rows.

A real run skips rows another transaction has locked (a push's, by design). Before the tenant's rows
lock (services/gc.py `rows_lock_name`) it also skipped the rows a preview was marking at that moment
and freed nothing: the dashboard's GC page, reloaded right after "Run now", did exactly that.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from gateway.core.locks import advisory_lock, advisory_xact_locks, lock_id
from gateway.registry.models import Blob
from gateway.registry.services import gc
from gateway.registry.services.gc import gc_mark, gc_preview, gc_run, rows_lock_name

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _grace_zero(settings):
    settings.GATEWAY_GC_GRACE_SECONDS = 0


def _garbage(reg, n: int = 4) -> int:
    """n unreferenced blobs; their bytes."""
    bodies = [f"preview-lock blob {i}".encode() for i in range(n)]
    for body in bodies:
        reg.push_blob("app", body)
    return sum(len(b) for b in bodies)


def _waiting_for(name: str) -> bool:
    """Whether some backend waits for the advisory lock `name` (pg_locks: objid is its low 32 bits)."""
    key = lock_id(name)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = (%s::bigint & x'ffffffffffffffff'::bigint)",
            [key],
        )
        return cursor.fetchone()[0] > 0


def _in_thread(fn, results: dict, key: str) -> threading.Thread:
    def run():
        try:
            results[key] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            results[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_real_run_waits_for_a_preview_in_flight_and_then_frees_everything(reg, tenant):
    freed = _garbage(reg)
    marking, release, results = threading.Event(), threading.Event(), {}

    def preview_in_flight():
        # What gc_preview does, held open half-way: the tenant's rows lock, then the mark's UPDATEs (row locks).
        with transaction.atomic():
            advisory_xact_locks([rows_lock_name(tenant)])
            gc_mark(tenant=tenant, now=timezone.now())
            marking.set()
            release.wait(30)
            transaction.set_rollback(True)

    holder = _in_thread(preview_in_flight, results, "preview")
    assert marking.wait(30)
    runner = _in_thread(lambda: gc_run(tenant=tenant), results, "run")
    deadline = time.monotonic() + 30
    while not _waiting_for(rows_lock_name(tenant)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _waiting_for(rows_lock_name(tenant)) and "run" not in results  # the run waits; it does not skip
    release.set()
    holder.join(30)
    runner.join(60)
    report = results["run"]
    assert not isinstance(report, BaseException), report
    assert report.bytes_freed == freed and report.counts["blobs_deleted"] == 4
    assert not Blob.objects.filter(tenant=tenant).exists()


def test_a_preview_during_a_real_run_says_busy_and_touches_nothing(reg, tenant, monkeypatch):
    _garbage(reg)
    monkeypatch.setattr(gc, "PREVIEW_WAIT_MS", 200)
    holding, release, results = threading.Event(), threading.Event(), {}

    def real_run_going_on():
        with advisory_lock(rows_lock_name(tenant), wait=True) as taken:
            assert taken
            holding.set()
            release.wait(30)

    holder = _in_thread(real_run_going_on, results, "run")
    assert holding.wait(30)
    try:
        started = time.monotonic()
        report = gc_preview(tenant=tenant, grace=timedelta(0))
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(30)
    assert report.busy and not report.done and report.bytes_freed == 0 and report.counts.get("blobs_deleted", 0) == 0
    assert 0.15 < waited < 5  # it waited its bounded while, then answered
    assert not Blob.objects.filter(tenant=tenant, gc_candidate_since__isnull=False).exists()
    # Once the run is over, the preview sees everything again (and a real run after it frees it all).
    again = gc_preview(tenant=tenant, grace=timedelta(0))
    assert not again.busy and again.done and again.counts["blobs_deleted"] == 4


def test_two_previews_at_once_both_see_everything(reg, tenant):
    freed = _garbage(reg)
    results: dict = {}
    threads = [_in_thread(lambda: gc_preview(tenant=tenant, grace=timedelta(0)), results, k) for k in ("a", "b")]
    for t in threads:
        t.join(60)
    for key in ("a", "b"):
        report = results[key]
        assert not isinstance(report, BaseException), report
        assert not report.busy and report.bytes_freed == freed and report.counts["blobs_deleted"] == 4
    assert not Blob.objects.filter(tenant=tenant, gc_candidate_since__isnull=False).exists()  # previews mark nothing
