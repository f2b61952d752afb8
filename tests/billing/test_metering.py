"""The billing meter: stream events folded into hourly UsageRecord rows, hourly storage samples, the period selector.

Real Redis, PostgreSQL and SeaweedFS; pushes and pulls through /v2/ with Django's test client.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import Tenant
from billing.metering import hour_of, usage_storage_sample
from billing.models import UsageRecord
from billing.models.usage import TENANT_TOTAL
from billing.tasks import usage_sample_all_task, usage_sample_task
from billing.usage_selectors import usage_period_get
from gateway.celery import app
from gateway.registry import access
from gateway.registry.services import events
from gateway.registry.services.stream import events_flush
from gateway.registry.usage_selectors import usage_storage_get
from tests.factories import make_tenant
from tests.helpers import sha
from tests.registry.test_usage import _empty_queue

OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
__all__ = ["_empty_queue"]  # autouse here too: the stream's Redis keys emptied around each test


def _records(tenant, **filters) -> dict[str, UsageRecord]:
    return {r.repository: r for r in UsageRecord.objects.filter(tenant=tenant, **filters)}


def _push_multiarch(reg, repo: str) -> dict:
    """Two platform images and an index over them; what each weighs."""
    amd = reg.push_image(repo, "amd64", [b"amd64 layer " * 100], config=b'{"architecture":"amd64","os":"linux"}')
    arm = reg.push_image(repo, "arm64", [b"arm64 layer " * 50], config=b'{"architecture":"arm64","os":"linux"}')
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {"mediaType": OCI, "digest": d, "size": len(p), "platform": {"architecture": arch, "os": "linux"}}
                for (d, p), arch in ((amd, "amd64"), (arm, "arm64"))
            ],
        }
    ).encode()
    assert reg.push_manifest(repo, "multi", index, INDEX).status_code == 201
    return {"amd": amd, "arm": arm, "index": index}


@pytest.mark.django_db
def test_pulls_count_image_manifests_and_egress_is_split_by_download_mode(reg, tenant):
    image = _push_multiarch(reg, "app")
    amd_digest, amd_payload = image["amd"]
    layer = b"amd64 layer " * 100
    # A multi-arch pull: the index (not a pull), then one platform manifest (one pull), then its layer.
    assert reg.get("/v2/acme/app/manifests/multi", HTTP_ACCEPT=INDEX).status_code == 200
    assert reg.get(f"/v2/acme/app/manifests/{amd_digest}", HTTP_ACCEPT=OCI).status_code == 200
    r = reg.get(f"/v2/acme/app/blobs/{sha(layer)}")
    assert b"".join(r.streaming_content) == layer
    # A ranged proxied GET is charged for the range; a HEAD is free.
    r = reg.get(f"/v2/acme/app/blobs/{sha(layer)}", HTTP_RANGE="bytes=10-109")
    assert r.status_code == 206 and len(b"".join(r.streaming_content)) == 100
    assert reg.head(f"/v2/acme/app/manifests/{amd_digest}", HTTP_ACCEPT=OCI).status_code == 200
    # Redirect mode: the blob is counted at its size, whatever the client then fetches from the bucket.
    Tenant.objects.filter(pk=tenant.pk).update(redirect_blob_downloads=True)
    access.caches_clear()  # the registry caches tenants per process
    r = reg.get(f"/v2/acme/app/blobs/{sha(layer)}")
    assert r.status_code == 307
    assert reg.get("/v2/acme/other/manifests/nope", HTTP_ACCEPT=OCI).status_code == 404  # not an event at all

    events_flush()
    [row] = UsageRecord.objects.filter(tenant=tenant)
    assert (row.repository, row.hour) == ("app", hour_of(datetime.now(UTC)))
    assert row.pulls == 1
    assert row.egress_proxied_bytes == len(image["index"]) + len(amd_payload) + len(layer) + 100
    assert row.egress_redirect_bytes == len(layer)
    assert (row.storage_byte_hours, row.storage_sampled_at) == (0, None)


@pytest.mark.django_db
def test_events_fold_per_tenant_repository_and_hour_adding_to_existing_rows(reg, tenant):
    other = make_tenant("globex")
    digest, payload = reg.push_image("app", "1", [b"layer"])
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(3):
        reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    events.record(tenant=other, repository="web", digest=digest, size=7, kind="manifest", direction="pull", media_type=OCI)
    events_flush()
    # An event recorded an hour ago lands in that hour's row; one recorded before media types were
    # carried (no "mt") counts as a pull.
    old = {
        "t": tenant.pk,
        "r": "app",
        "d": digest,
        "b": 11,
        "k": "manifest",
        "dir": "pull",
        "m": "proxied",
        "ts": an_hour_ago.timestamp(),
    }
    events.redis_client().rpush(events.QUEUE_KEY, json.dumps(old))
    for _ in range(2):
        reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    events_flush()
    now_row = UsageRecord.objects.get(tenant=tenant, repository="app", hour=hour_of(datetime.now(UTC)))
    assert (now_row.pulls, now_row.egress_proxied_bytes) == (5, 5 * len(payload))
    old_row = UsageRecord.objects.get(tenant=tenant, repository="app", hour=hour_of(an_hour_ago))
    assert (old_row.pulls, old_row.egress_proxied_bytes) == (1, 11)
    assert _records(other)["web"].pulls == 1
    assert UsageRecord.objects.count() == 3  # pushes are not traffic


@pytest.mark.django_db
def test_the_fold_is_one_statement_per_batch(reg, tenant):
    from django.test.utils import CaptureQueriesContext

    reg.push_image("app", "1", [b"layer"])
    events_flush()
    for repo in ("app", "app", "app"):
        reg.get(f"/v2/acme/{repo}/manifests/1", HTTP_ACCEPT=OCI)
    with CaptureQueriesContext(connection) as queries:
        events_flush()
    assert sum("billing_usagerecord" in q["sql"] for q in queries.captured_queries) == 1


@pytest.mark.django_db
def test_storage_sample_records_the_tenant_total_and_each_repository_once_per_hour(reg, tenant):
    reg.push_image("app", "1", [b"shared layer", b"app only"])
    reg.push_image("web", "1", [b"shared layer"])
    figures = usage_storage_get(tenant=tenant)
    hour = hour_of(datetime.now(UTC))
    assert usage_storage_sample(tenant=tenant) is True
    rows = _records(tenant, hour=hour)
    assert set(rows) == {TENANT_TOTAL, "app", "web"}
    assert rows[TENANT_TOTAL].storage_byte_hours == figures["stored_bytes"]  # the shared layer once
    by_name = {r["name"]: r["stored_bytes"] for r in figures["repositories"]}
    assert rows["app"].storage_byte_hours == by_name["app"] and rows["web"].storage_byte_hours == by_name["web"]
    assert rows["app"].storage_byte_hours + rows["web"].storage_byte_hours > figures["stored_bytes"]
    sampled_at = rows[TENANT_TOTAL].storage_sampled_at
    # More bytes later in the hour: a second run (a retry, the :35 catch-up) changes nothing.
    reg.push_image("app", "2", [b"a new layer"])
    assert usage_storage_sample(tenant=tenant) is False
    assert usage_sample_task(tenant_id=tenant.pk, hour=hour.isoformat()) is False
    again = _records(tenant, hour=hour)
    assert {k: (r.storage_byte_hours, r.storage_sampled_at) for k, r in again.items()} == {
        k: (r.storage_byte_hours, sampled_at) for k, r in rows.items()
    }
    # The next hour is a new sample, with the new bytes; traffic already in a row is kept.
    reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    events_flush()
    assert usage_storage_sample(tenant=tenant, hour=hour + timedelta(hours=1)) is True
    later = _records(tenant, hour=hour + timedelta(hours=1))
    assert later[TENANT_TOTAL].storage_byte_hours == usage_storage_get(tenant=tenant)["stored_bytes"] > figures["stored_bytes"]
    assert _records(tenant, hour=hour)["app"].pulls == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_samples_of_an_hour_count_once(reg, tenant):
    reg.push_image("app", "1", [b"layer"])
    hour = hour_of(datetime.now(UTC))
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(usage_storage_sample(tenant=tenant, hour=hour))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False, True]
    assert UsageRecord.objects.filter(tenant=tenant, repository=TENANT_TOTAL).count() == 1
    assert (
        UsageRecord.objects.get(tenant=tenant, repository=TENANT_TOTAL).storage_byte_hours
        == usage_storage_get(tenant=tenant)["stored_bytes"]
    )


@pytest.mark.django_db
def test_the_sample_fan_out_queues_every_live_tenant_with_the_hour(tenant, monkeypatch):
    make_tenant("globex")
    gone = make_tenant("initech")
    Tenant.objects.filter(pk=gone.pk).update(status=Tenant.Status.DELETING)
    sent: list[dict] = []
    monkeypatch.setattr(usage_sample_task, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    assert usage_sample_all_task(hour="2026-01-02T03:00:00+00:00") == 2
    assert {k["hour"] for k in sent} == {"2026-01-02T03:00:00+00:00"}
    assert len(sent) == 2 and gone.pk not in {k["tenant_id"] for k in sent}
    for kwargs in sent:
        usage_sample_task(**kwargs)
    assert UsageRecord.objects.filter(hour=datetime(2026, 1, 2, 3, tzinfo=UTC), repository=TENANT_TOTAL).count() == 2
    assert usage_sample_task(tenant_id=gone.pk, hour="2026-01-02T03:00:00+00:00") is None
    assert usage_sample_task(tenant_id=10**9, hour="2026-01-02T03:00:00+00:00") is None
    sent.clear()
    before = hour_of(datetime.now(UTC)).isoformat()
    usage_sample_all_task()  # from beat: the hour it runs in, fixed for every tenant it queues
    [hour] = {k["hour"] for k in sent}
    assert hour in {before, hour_of(datetime.now(UTC)).isoformat()}
    with pytest.raises(ValueError, match="aware"):
        usage_storage_sample(tenant=tenant, hour=datetime(2026, 1, 2, 4))
    assert not UsageRecord.objects.filter(hour=datetime(2026, 1, 2, 4, tzinfo=UTC)).exists()


def test_the_billing_tasks_are_on_the_beat_schedule():
    app.loader.import_default_modules()
    sample = app.conf.beat_schedule["billing-usage-sample-all"]
    assert sample["task"] == usage_sample_all_task.name and sample["task"] in app.tasks
    assert sample["schedule"].minute == {5, 35} and sample["schedule"].hour == set(range(24))
    reconcile = app.conf.beat_schedule["billing-storage-reconcile-all"]
    assert reconcile["task"] in app.tasks
    assert (reconcile["schedule"].minute, reconcile["schedule"].hour) == ({23}, {3})


@pytest.mark.django_db
def test_usage_period_sums_the_hours_of_the_period_only(reg, tenant):
    base = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        ("app", base, 2, 100, 1000, 0, None),
        ("app", base + timedelta(hours=1), 1, 50, 0, 0, None),
        ("web", base + timedelta(hours=1), 4, 10, 5, 0, None),
        (TENANT_TOTAL, base, 0, 0, 0, 3 * 10**9, base),
        (TENANT_TOTAL, base + timedelta(hours=1), 0, 0, 0, 10**9 // 2, base + timedelta(hours=1)),
        ("app", base + timedelta(hours=2), 9, 9, 9, 0, None),  # after the period
        ("app", base - timedelta(hours=1), 9, 9, 9, 0, None),  # before it
    ]
    for repository, hour, pulls, proxied, redirect, storage, sampled in rows:
        UsageRecord.objects.create(
            tenant=tenant,
            repository=repository,
            hour=hour,
            pulls=pulls,
            egress_proxied_bytes=proxied,
            egress_redirect_bytes=redirect,
            storage_byte_hours=storage,
            storage_sampled_at=sampled,
        )
    UsageRecord.objects.create(tenant=make_tenant("globex"), repository="app", hour=base, pulls=100)
    usage = usage_period_get(tenant=tenant, start=base, end=base + timedelta(hours=2))
    assert (usage["pulls"], usage["egress_proxied_bytes"], usage["egress_redirect_bytes"], usage["egress_bytes"]) == (
        7,
        160,
        1005,
        1165,
    )
    assert usage["storage_byte_hours"] == 3 * 10**9 + 10**9 // 2
    assert usage["storage_gb_hours"] == Decimal("3.5")
    assert usage["hours_sampled"] == 2
    assert [(r["repository"], r["pulls"], r["egress_bytes"]) for r in usage["repositories"]] == [("app", 3, 1150), ("web", 4, 15)]
    empty = usage_period_get(tenant=tenant, start=base + timedelta(days=30), end=base + timedelta(days=31))
    assert (empty["pulls"], empty["egress_bytes"], empty["storage_gb_hours"], empty["repositories"]) == (0, 0, Decimal(0), [])


@pytest.mark.django_db
def test_usage_period_refuses_periods_off_the_hour_or_backwards(tenant):
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for start, end in (
        (base + timedelta(minutes=1), base + timedelta(hours=1)),
        (base, base + timedelta(seconds=1)),
        (base, base),
        (base + timedelta(hours=1), base),
    ):
        with pytest.raises(ValueError, match="on the hour|must be after"):
            usage_period_get(tenant=tenant, start=start, end=end)
    with pytest.raises(ValueError, match="aware"):
        usage_period_get(tenant=tenant, start=base.replace(tzinfo=None), end=base)


@pytest.mark.django_db(transaction=True)  # closing a response mid-stream ends the request: its connection is closed
def test_a_proxied_download_abandoned_after_two_chunks_is_charged_for_the_first(reg, tenant):
    """A chunk counts once the server asks for the next (its write returned); close() reports, once."""
    data = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    digest = reg.push_blob("app", data)
    events_flush()
    r = reg.get(f"/v2/acme/app/blobs/{digest}")
    chunks = iter(r.streaming_content)
    first, second = next(chunks), next(chunks)
    assert first + second == data[: len(first) + len(second)]
    r.close()  # as the WSGI server does when the client is gone: the response is closed mid-stream
    r.close()  # a second close reports nothing more
    events_flush()
    [row] = UsageRecord.objects.filter(tenant=tenant)
    assert (row.egress_proxied_bytes, row.pulls) == (len(first), 0)


@pytest.mark.django_db
def test_a_malformed_media_type_drops_the_event_as_malformed(reg, tenant, redis_client):
    bad = {"t": tenant.pk, "r": "app", "d": sha(b"x"), "b": 5, "k": "manifest", "dir": "pull", "ts": 1_700_000_000, "mt": 7}
    redis_client.rpush(events.QUEUE_KEY, json.dumps(bad), json.dumps({**bad, "mt": "x" * 300}))
    events.record(tenant=tenant, repository="app", digest=sha(b"x"), size=5, kind="manifest", direction="pull", media_type=INDEX)
    assert events_flush() == 3
    [row] = UsageRecord.objects.filter(tenant=tenant)
    assert (row.pulls, row.egress_proxied_bytes) == (0, 5)  # only the well-formed one, an index: bytes, no pull


@pytest.mark.django_db
def test_a_batch_with_more_rows_than_one_statement_takes_is_folded_in_chunks(reg, tenant, monkeypatch):
    from billing import metering

    monkeypatch.setattr(metering, "FOLD_ROWS", 2)
    for i in range(5):
        events.record(
            tenant=tenant, repository=f"r{i}", digest=sha(b"m"), size=10 + i, kind="manifest", direction="pull", media_type=OCI
        )
    events.record(tenant=tenant, repository="r0", digest=sha(b"m"), size=1, kind="blob", direction="pull", mode="redirect")
    assert events_flush() == 6
    rows = _records(tenant)
    assert {name: (r.pulls, r.egress_proxied_bytes, r.egress_redirect_bytes) for name, r in rows.items()} == {
        f"r{i}": (1, 10 + i, 1 if i == 0 else 0) for i in range(5)
    }
