"""Usage events: recorded on push/pull through /v2/, flushed from Redis into PostgreSQL.

Real Redis, PostgreSQL and SeaweedFS throughout; the last test runs a real Celery worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant
from gateway.celery import app
from gateway.registry.models import Manifest, Tag, UsageEvent
from gateway.registry.services import events, stream
from gateway.registry.services.stream import events_flush
from gateway.tasks import usage_flush_task
from tests.helpers import celery_worker, sha

OCI = "application/vnd.oci.image.manifest.v1+json"
KEYS = (events.QUEUE_KEY, stream.PROCESSING_KEY, stream.BATCH_KEY)


@pytest.fixture(autouse=True)
def _empty_queue(redis_client):
    redis_client.delete(*KEYS)
    yield
    redis_client.delete(*KEYS)


def _rows(tenant, **filters):
    return list(UsageEvent.objects.filter(tenant=tenant, **filters).order_by("seq"))


@pytest.mark.django_db
def test_push_and_pull_are_flushed_into_rows_and_last_pulled_at(reg, tenant):
    config = b'{"architecture":"amd64","os":"linux"}'
    digest, payload = reg.push_image("app", "1", [b"layer-one", b"layer-two"], config=config)
    reg.push_manifest("app", "2", payload, OCI)  # a second tag on the same manifest, never pulled
    r = reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    assert r.status_code == 200
    r = reg.get(f"/v2/acme/app/blobs/{sha(b'layer-one')}")
    assert r.status_code == 200 and b"".join(r.streaming_content) == b"layer-one"

    assert events_flush() == 3 + 2 + 1 + 1  # blob pushes, manifest pushes, manifest pull, blob pull

    pushed_blobs = {(e.digest, e.bytes) for e in _rows(tenant, kind="blob", direction="push")}
    assert pushed_blobs == {(sha(config), len(config)), (sha(b"layer-one"), 9), (sha(b"layer-two"), 9)}
    assert {(e.digest, e.reference, e.bytes) for e in _rows(tenant, kind="manifest", direction="push")} == {
        (digest, "1", len(payload)),
        (digest, "2", len(payload)),
    }
    [pull] = _rows(tenant, kind="manifest", direction="pull")
    assert (pull.repository_name, pull.digest, pull.reference, pull.bytes, pull.mode) == (
        "app",
        digest,
        "1",
        len(payload),
        "proxied",
    )
    [blob_pull] = _rows(tenant, kind="blob", direction="pull")
    assert (blob_pull.digest, blob_pull.bytes) == (sha(b"layer-one"), 9)

    tag1, tag2 = Tag.objects.get(tenant=tenant, name="1"), Tag.objects.get(tenant=tenant, name="2")
    assert tag1.last_pulled_at == pull.occurred_at
    assert tag2.last_pulled_at is None
    assert Manifest.objects.get(tenant=tenant, digest=digest).last_pulled_at == pull.occurred_at
    assert events_flush() == 0  # nothing left, nothing twice
    assert UsageEvent.objects.filter(tenant=tenant).count() == 7


@pytest.mark.django_db
def test_pull_by_digest_touches_the_manifest_not_the_tag(reg, tenant):
    digest, _ = reg.push_image("app", "1", [b"l"])
    assert reg.get(f"/v2/acme/app/manifests/{digest}", HTTP_ACCEPT=OCI).status_code == 200
    events_flush()
    assert Tag.objects.get(tenant=tenant, name="1").last_pulled_at is None
    assert Manifest.objects.get(tenant=tenant, digest=digest).last_pulled_at is not None


@pytest.mark.django_db
def test_one_update_per_distinct_tag_per_batch(reg, tenant):
    reg.push_image("app", "1", [b"l"])
    for _ in range(5):
        assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        events_flush()
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert sum('"registry_tag"' in q.split(" SET ")[0] for q in updates) == 1
    assert sum('"registry_manifest"' in q.split(" SET ")[0] for q in updates) == 1
    assert len(_rows(tenant, direction="pull")) == 5


@pytest.mark.django_db
def test_a_failed_insert_loses_nothing_and_the_replay_inserts_once(reg, tenant, redis_client):
    reg.push_image("app", "1", [b"l"])
    queued = redis_client.llen(events.QUEUE_KEY)
    assert queued == 3
    # A real database failure: a constraint every row violates (rolled back with the test).
    with connection.cursor() as c:
        c.execute("ALTER TABLE registry_usageevent ADD CONSTRAINT test_refuse_all CHECK (bytes < 0)")
    with pytest.raises(IntegrityError):
        events_flush()
    assert redis_client.llen(stream.PROCESSING_KEY) == queued  # still in Redis, claimed
    assert UsageEvent.objects.filter(tenant=tenant).count() == 0
    reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)  # arrives meanwhile: waits behind the batch
    with connection.cursor() as c:
        c.execute("ALTER TABLE registry_usageevent DROP CONSTRAINT test_refuse_all")
    assert events_flush() == queued  # the same batch again, nothing new
    assert events_flush() == 1
    assert UsageEvent.objects.filter(tenant=tenant).count() == queued + 1
    assert redis_client.exists(stream.PROCESSING_KEY, stream.BATCH_KEY) == 0


@pytest.mark.django_db
def test_a_lost_acknowledgement_replays_without_duplicates(reg, tenant, redis_client):
    reg.push_image("app", "1", [b"l"])
    raw = redis_client.lrange(events.QUEUE_KEY, 0, -1)
    assert events_flush() == len(raw)
    batch = UsageEvent.objects.filter(tenant=tenant).values_list("batch", flat=True).first()
    # As if the worker died between COMMIT and acknowledging: the batch is still claimed.
    redis_client.rpush(stream.PROCESSING_KEY, *raw)
    redis_client.set(stream.BATCH_KEY, str(batch))
    assert events_flush() == len(raw)
    assert UsageEvent.objects.filter(tenant=tenant).count() == len(raw)
    assert redis_client.exists(stream.PROCESSING_KEY) == 0


@pytest.mark.django_db
def test_events_of_deleted_tenants_and_malformed_events_are_dropped(reg, tenant, redis_client, caplog):
    events.record(tenant=Tenant(pk=2_000_000_000), repository="gone", digest=sha(b"x"), size=1, kind="blob", direction="push")
    redis_client.rpush(
        events.QUEUE_KEY,
        b"not json",
        json.dumps({"t": tenant.pk, "r": "app", "d": "sha256:x", "b": -1, "k": "blob", "dir": "push", "ts": 1}),
        json.dumps({"t": tenant.pk, "r": "app", "d": "sha256:x", "b": 1, "k": "layer", "dir": "push", "ts": 1}),
        json.dumps({"t": tenant.pk, "r": "a" * 300, "d": "sha256:x", "b": 1, "k": "blob", "dir": "push", "ts": 1}),
    )
    events.record(tenant=tenant, repository="app", digest=sha(b"y"), size=5, kind="blob", direction="pull", mode="redirect")
    with caplog.at_level(logging.WARNING, logger="gateway.registry.services.usage"):
        assert events_flush() == 6
    assert sum("malformed" in r.getMessage() for r in caplog.records) == 4
    [row] = UsageEvent.objects.all()
    assert (row.tenant_id, row.digest, row.bytes, row.mode) == (tenant.pk, sha(b"y"), 5, "redirect")


@pytest.mark.django_db
def test_max_items_bounds_a_batch(reg, tenant):
    reg.push_image("app", "1", [b"a", b"b"])  # 3 blobs + 1 manifest
    assert events_flush(max_items=3) == 3
    assert events_flush(max_items=3) == 1
    assert UsageEvent.objects.filter(tenant=tenant).count() == 4
    for bad in (0, -1, True, "5", 10**9):
        with pytest.raises(ValueError, match="max_items"):
            events_flush(max_items=bad)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_a_redis_outage_does_not_fail_pushes_or_pulls(reg, tenant, settings, caplog):
    live_url = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/9"  # the events' Redis: a port nobody listens on
    with caplog.at_level(logging.WARNING, logger="gateway.registry.services.events"):
        digest, payload = reg.push_image("app", "1", [b"layer"])
        r = reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    assert r.status_code == 200 and r.content == payload
    assert sum("usage event dropped" in rec.getMessage() for rec in caplog.records) == 2 + 1 + 1  # 2 blobs, manifest, pull
    settings.REDIS_URL = live_url
    assert events_flush() == 0


@pytest.mark.django_db
def test_the_task_flushes_when_called_directly(reg, tenant):
    reg.push_image("app", "1", [b"l"])
    assert usage_flush_task(max_items=100) == 3
    assert usage_flush_task.apply(kwargs={"max_items": 100}).get() == 0
    assert UsageEvent.objects.filter(tenant=tenant).count() == 3


def test_the_flush_runs_every_minute_from_the_beat_schedule():
    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["usage-flush"]
    assert entry["task"] == usage_flush_task.name == "gateway.usage.flush"
    assert entry["task"] in app.tasks
    assert entry["schedule"].minute == set(range(60)) and entry["schedule"].hour == set(range(24))
    assert entry["options"]["expires"] < 60


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_flushes_what_delay_sends(reg, tenant, redis_client):
    """`.delay()` to the real broker, a real `celery worker` process: events arrive, re-queued batches too."""
    reg.push_image("app", "1", [b"layer-a", b"layer-b"])  # 3 blob + 1 manifest push events
    assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).status_code == 200
    log = tempfile.NamedTemporaryFile(prefix="wharf-worker-", suffix=".log", delete=False)  # noqa: SIM115  (the worker writes it)
    redis_client.delete("celery")  # no stale message of an earlier test goes before this one's flush
    worker = celery_worker("celery", log)
    try:
        usage_flush_task.delay(max_items=2)  # 5 events: batches of 2, 2, 1 through two re-queues
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and worker.poll() is None:
            if (
                UsageEvent.objects.filter(tenant=tenant).count() == 5
                and Tag.objects.filter(tenant=tenant, last_pulled_at__isnull=False).exists()
            ):
                break
            time.sleep(0.2)
        assert UsageEvent.objects.filter(tenant=tenant).count() == 5, _tail(log.name)
        assert Tag.objects.get(tenant=tenant, name="1").last_pulled_at is not None
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        redis_client.delete("celery")  # nor does a re-queue this one left behind go before a later test's
        log.close()
        os.unlink(log.name)


def _tail(path: str) -> str:
    with open(path, errors="replace") as f:
        return "worker log:\n" + f.read()[-4000:]
