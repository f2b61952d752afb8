"""Storj-true cost (docs/decisions/0048): Storj's rules on known objects, exact Decimals, both pricing models."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from billing.conf import app_settings
from billing.metering import usage_records_fold
from billing.models import Plan
from billing.services import subscription_start
from billing.storj_cost import (
    MONTH_SECONDS,
    TB,
    billable_bytes,
    billed_seconds,
    dollars,
    month_of,
    segments,
    storage_cost_get,
)
from billing.storj_savings import DoomedObject, savings_price
from gateway.registry.models import Blob, DeletedObject, Manifest, ObjectDeletion, Repository, Tag
from gateway.registry.services.events import Event
from gateway.registry.services.gc import gc_run_to_completion
from gateway.registry.services.manifests import manifest_delete
from gateway.settings.storj_prices import MODELS
from gateway.storage import keys
from tests.helpers import sha

MIB = 1024 * 1024
START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(hours=720)  # one Storj month


def _prices(settings, model: str, **overrides):
    settings.GATEWAY_STORJ_PRICES = {**MODELS[model], "model": model, "segment_bytes": 64 * MIB, **overrides}
    return app_settings.storj_prices


def test_the_defaults_are_storjs_published_2026_prices():
    prices = app_settings.storj_prices
    assert (prices.model, prices.storage_tb_month, prices.egress_tb, prices.segment_month) == (
        "2026",
        Decimal("7"),
        Decimal("7"),
        Decimal("0"),
    )
    assert (prices.min_object_bytes, prices.min_duration_days, prices.segment_bytes) == (50_000, 30, 64 * MIB)


def test_a_10_kb_object_is_billed_as_50_kb_and_a_200_mib_object_is_4_segments(settings):
    prices = _prices(settings, "2026")
    assert billable_bytes(10_000, prices) == 50_000
    assert billable_bytes(50_001, prices) == 50_001
    assert [segments(n, prices) for n in (0, 1, 64 * MIB, 64 * MIB + 1, 200 * MIB)] == [1, 1, 1, 2, 4]
    legacy = _prices(settings, "legacy")
    assert billable_bytes(10_000, legacy) == 10_000  # legacy has no minimum object size


def test_an_object_deleted_after_3_days_is_billed_30_days(settings):
    prices = _prices(settings, "2026")
    stored = START + timedelta(days=2)
    deleted = stored + timedelta(days=3)
    assert billed_seconds(stored_at=stored, deleted_at=deleted, start=START, end=END, prices=prices) == 30 * 86400
    # Kept past 30 days: billed as kept. Stored before the period: only its part in the period, plus the rest owed.
    kept = billed_seconds(
        stored_at=stored, deleted_at=stored + timedelta(days=31), start=START, end=END + timedelta(days=9), prices=prices
    )
    assert kept == 31 * 86400
    assert billed_seconds(
        stored_at=START - timedelta(days=5), deleted_at=START + timedelta(days=1), start=START, end=END, prices=prices
    ) == (25 * 86400)
    # Deleted before the period: its minimum was billed with the deletion, in an earlier period.
    assert (
        billed_seconds(
            stored_at=START - timedelta(days=9), deleted_at=START - timedelta(days=1), start=START, end=END, prices=prices
        )
        == 0
    )
    assert billed_seconds(stored_at=START, deleted_at=None, start=START, end=END, prices=prices) == MONTH_SECONDS
    legacy = _prices(settings, "legacy")
    assert billed_seconds(stored_at=stored, deleted_at=deleted, start=START, end=END, prices=legacy) == 3 * 86400


def test_amounts_are_exact_decimals():
    assert dollars(10**12 * MONTH_SECONDS, Decimal("7"), 10**12 * MONTH_SECONDS) == Decimal("7.0000000000")
    # A third of a month of a TB: 7/3 rounded once, at the tenth decimal, half even.
    assert dollars(10**12 * MONTH_SECONDS // 3, Decimal("7"), 10**12 * MONTH_SECONDS) == Decimal("2.3333333333")
    # A float would drift: 0.1 + 0.2; ten thousand lines of 1 GB egress at $7/TB add up to exactly $70.
    lines = [dollars(10**9, Decimal("7"), 10**12) for _ in range(10_000)]
    assert sum(lines, Decimal(0)) == Decimal("70") and all(isinstance(x, Decimal) for x in lines)


def test_savings_of_young_and_old_objects_follow_the_minimum_duration(settings):
    prices = _prices(settings, "2026")
    now = START + timedelta(days=10)
    old = DoomedObject("blob", "old", 10**12, now - timedelta(days=60))
    young = DoomedObject("blob", "young", 10**12, now - timedelta(days=3))
    saved = savings_price(objects=[old, young], now=now, prices=prices)
    # The old TB saves a month ($7); the young one is billed 27 more days anyway, so it saves 3 days' worth.
    assert saved.storage_per_month == Decimal("7") + dollars(3 * 86400, Decimal("7"), MONTH_SECONDS)
    assert saved.early_deletion_owed == dollars(27 * 86400, Decimal("7"), MONTH_SECONDS)
    assert (saved.objects, saved.young_objects, saved.bytes) == (2, 1, 2 * 10**12)
    legacy = savings_price(objects=[young], now=now, prices=_prices(settings, "legacy"))
    assert legacy.storage_per_month == Decimal("4") and legacy.segments_per_month == dollars(
        segments(10**12, prices), Decimal("0.0000088"), 1
    )


def _blob(tenant, digest_char: str, size: int, created_at: datetime) -> Blob:
    blob = Blob.objects.create(
        tenant=tenant, digest="sha256:" + digest_char * 64, size=size, storage_key=f"t/{tenant.pk}/uploads/{digest_char * 32}"
    )
    Blob.objects.filter(pk=blob.pk).update(created_at=created_at)
    return blob


@pytest.mark.django_db
def test_storage_cost_of_known_objects_in_both_models(settings, tenant):
    small = _blob(tenant, "a", 10_000, START - timedelta(days=5))  # the whole period
    big = _blob(tenant, "b", 200 * MIB, START + timedelta(hours=360))  # half the period
    _blob(tenant, "c", 5, END + timedelta(hours=1))  # after the period: not counted
    index_bytes = [len(f'{{"digest":"{b.digest}","key":"{b.storage_key}","size":{b.size}}}') for b in (small, big)]
    usage_records_fold(
        batch=uuid.uuid4(),
        events=[
            Event(
                seq=1,
                tenant_id=tenant.pk,
                repository="app",
                digest=small.digest,
                size=3 * 10**9,
                kind="blob",
                direction="pull",
                mode="proxied",
                reference="",
                occurred_at=START + timedelta(hours=2),
            )
        ],
    )
    half = MONTH_SECONDS // 2
    cost = storage_cost_get(tenant=tenant, start=START, end=END)
    blobs, index = cost.tallies["blob"], cost.tallies["index"]
    assert (blobs.objects, blobs.bytes, blobs.billable_bytes, blobs.small_objects, blobs.segments) == (
        2,
        10_000 + 200 * MIB,
        50_000 + 200 * MIB,
        1,
        5,
    )
    assert blobs.billable_byte_seconds == 50_000 * MONTH_SECONDS + 200 * MIB * half
    assert (index.objects, index.bytes, index.billable_bytes) == (2, sum(index_bytes), 100_000)
    tb_month = 10**12 * MONTH_SECONDS
    storage = dollars(50_000 * MONTH_SECONDS + 200 * MIB * half + 50_000 * MONTH_SECONDS + 50_000 * half, Decimal(7), tb_month)
    zero = Decimal("0E-10")
    assert cost.lines == {
        "storage": storage,
        "segments": zero,
        "egress": Decimal("0.0210000000"),
        "deleted_storage": zero,  # nothing deleted
        "deleted_segments": zero,
        "minimum_duration": zero,
    }
    assert cost.total == storage + Decimal("0.021")
    minimum = (40_000 * MONTH_SECONDS) + (50_000 - index_bytes[0]) * MONTH_SECONDS + (50_000 - index_bytes[1]) * half
    assert cost.effects["minimum_object_size"] == dollars(minimum, Decimal(7), tb_month)
    assert cost.plan is None and cost.margin is None

    _prices(settings, "legacy")
    legacy = storage_cost_get(tenant=tenant, start=START, end=END)
    raw = 10_000 * MONTH_SECONDS + 200 * MIB * half + index_bytes[0] * MONTH_SECONDS + index_bytes[1] * half
    assert legacy.lines["storage"] == dollars(raw, Decimal(4), tb_month)
    # Segments: the small blob and both index objects one each, the 200 MiB blob four (half the month).
    assert legacy.lines["segments"] == dollars(
        1 * MONTH_SECONDS + 4 * half + MONTH_SECONDS + half, Decimal("0.0000088"), MONTH_SECONDS
    )
    assert legacy.effects["minimum_object_size"] == Decimal("0E-10")


@pytest.mark.django_db
def test_manifests_and_tags_are_objects_and_the_plan_price_stands_beside(reg, tenant, plans, blob_store):
    _, payload = reg.push_image("app", "1", [b"layer " * 100])
    subscription_start(tenant=tenant, plan_code="pro")
    start, end = month_of(datetime.now(UTC))
    cost = storage_cost_get(tenant=tenant, start=start, end=end)
    assert (cost.tallies["manifest"].objects, cost.tallies["manifest"].bytes) == (1, len(payload))
    assert cost.tallies["tag"].objects == 1
    # The byte counts match the objects the registry wrote to the bucket (index and tag JSON included).
    listed = {o.key: o.size for o in blob_store.list(keys.tenant_prefix(tenant.pk))}
    tag_key = keys.tag_key(tenant.pk, "app", "1")
    assert cost.tallies["tag"].bytes == listed[tag_key]
    index_sizes = sum(size for key, size in listed.items() if key.startswith(keys.blob_index_prefix(tenant.pk)))
    assert cost.tallies["index"].bytes == index_sizes
    assert cost.tallies["blob"].bytes == sum(Blob.objects.filter(tenant=tenant).values_list("size", flat=True))
    assert cost.plan["code"] == "pro" and cost.plan["monthly_price"] == Decimal(9)
    assert cost.plan["price_for_period"] == Decimal("9.0000000000")  # a whole calendar month: the plan's price
    half = storage_cost_get(tenant=tenant, start=START, end=START + timedelta(days=15))
    assert half.plan["price_for_period"] == Decimal("4.5000000000")  # half of November
    assert cost.margin == Decimal(9) - cost.total
    assert Tag.objects.filter(tenant=tenant).count() == 1 and Manifest.objects.filter(tenant=tenant).count() == 1
    Plan.objects.filter(code="pro").update(currency="EUR")  # Storj bills dollars: no margin across currencies
    assert storage_cost_get(tenant=tenant, start=start, end=end).margin is None


@pytest.mark.django_db
def test_a_period_off_the_hour_or_backwards_is_refused(tenant):
    with pytest.raises(ValueError, match="on the hour"):
        storage_cost_get(tenant=tenant, start=START + timedelta(minutes=5), end=END)
    with pytest.raises(ValueError, match="must be after start"):
        storage_cost_get(tenant=tenant, start=END, end=START)
    # An empty tenant costs nothing, exactly.
    empty = storage_cost_get(tenant=tenant, start=START, end=END)
    assert (empty.objects, empty.total, empty.effects["minimum_object_size"]) == (0, Decimal(0), Decimal(0))


def _age(tenant, *, contents: list[bytes], manifest: str, tag: str, since: datetime) -> None:
    """Make an image's rows (its blobs, manifest and tag) look written at `since`."""
    Blob.objects.filter(tenant=tenant, digest__in=[sha(c) for c in contents]).update(created_at=since)
    Manifest.objects.filter(tenant=tenant, digest=manifest).update(created_at=since)
    Tag.objects.filter(tenant=tenant, name=tag).update(last_pushed_at=since)


@pytest.mark.django_db
def test_objects_deleted_in_the_period_are_billed_their_time_there_and_the_rest_of_30_days(reg, tenant, blob_store, settings):
    """Through manifest delete, GC and the drain: an image deleted at 10 days old, one at 40 days (stored before the period)."""
    _prices(settings, "2026")
    young_layer, young_cfg = b"y" * 200_000, b'{"architecture":"amd64","os":"linux","v":"young"}'
    old_layer, old_cfg = b"o" * 300_000, b'{"architecture":"amd64","os":"linux","v":"old"}'
    young, young_doc = reg.push_image("app", "young", [young_layer], young_cfg)
    old, old_doc = reg.push_image("app", "old", [old_layer], old_cfg)
    now = datetime.fromtimestamp(int(time.time()), UTC)  # a whole second: the drain's moment, below
    start = now.replace(minute=0, second=0) - timedelta(days=15)
    end = start + timedelta(hours=720)
    _age(tenant, contents=[young_layer, young_cfg], manifest=young, tag="young", since=now - timedelta(days=10))
    _age(tenant, contents=[old_layer, old_cfg], manifest=old, tag="old", since=now - timedelta(days=40))
    # What the ledger must hold: every object of both images, its size as the bucket lists it, since when it was stored.
    listed = {o.key: o.size for o in blob_store.list(keys.tenant_prefix(tenant.pk))}
    blobs = {b.digest: b for b in Blob.objects.filter(tenant=tenant)}
    expected = {}
    for digest, doc, tag, contents, days in (
        (young, young_doc, "young", (young_layer, young_cfg), 10),
        (old, old_doc, "old", (old_layer, old_cfg), 40),
    ):
        since = now - timedelta(days=days)
        for content in contents:
            b = blobs[sha(content)]
            expected[("data", b.storage_key)] = (len(content), since)
            expected[("index", keys.blob_index_key(tenant.pk, b.digest))] = (
                keys.blob_index_size(b.digest, b.size, b.storage_key),
                since,
            )
        expected[("manifest", keys.manifest_key(tenant.pk, "app", digest))] = (len(doc), since)
        expected[("tag", keys.tag_key(tenant.pk, "app", tag))] = (keys.tag_object_size(tag, digest), since)
    assert {key: size for (_, key), (size, _) in expected.items()} == listed  # the sizes are the objects' own

    repo = Repository.objects.get(tenant=tenant, name="app")
    with time_machine.travel(now, tick=False):  # within a second of the real clock: S3 accepts the signatures
        manifest_delete(
            tenant=tenant, repository=repo, reference=young, actor="test"
        )  # the manifest and its tag, drained at once
        manifest_delete(tenant=tenant, repository=repo, reference="old", actor="test")  # the tag only
        report = gc_run_to_completion(tenant=tenant, grace=timedelta(0))  # the old manifest, the four blobs, their index objects
    assert report.counts["manifests_deleted"] == 1 and report.counts["blobs_deleted"] == 4
    assert list(blob_store.list(keys.tenant_prefix(tenant.pk))) == [] and not ObjectDeletion.objects.exists()
    ledger = {(d.kind, d.key): (d.size, d.stored_since) for d in DeletedObject.objects.filter(tenant=tenant)}
    assert ledger == expected
    assert set(DeletedObject.objects.values_list("deleted_at", flat=True)) == {now}  # when DeleteObjects ran

    cost = storage_cost_get(tenant=tenant, start=start, end=end)
    tb_month, zero = TB * MONTH_SECONDS, Decimal("0E-10")
    lived, in_period = 10 * 86400, int((now - start).total_seconds())  # the old image, stored before the start: from it
    # Each image: its layer, and five objects under 50 kB (config, two index objects, manifest, tag) billed as 50 kB.
    young_billable, old_billable = 200_000 + 5 * 50_000, 300_000 + 5 * 50_000
    assert cost.lines["deleted_storage"] == dollars(young_billable * lived + old_billable * in_period, Decimal(7), tb_month)
    # Deleted at 10 days: billed 20 days more, with the deletion. At 40 days: nothing more.
    assert cost.lines["minimum_duration"] == dollars(young_billable * 20 * 86400, Decimal(7), tb_month)
    assert (cost.lines["storage"], cost.lines["deleted_segments"], cost.objects) == (zero, zero, 0)  # nothing left stored
    assert cost.total == cost.lines["deleted_storage"] + cost.lines["minimum_duration"]
    gone = cost.deleted_total
    young_bytes = sum(size for (size, since) in expected.values() if since == now - timedelta(days=10))
    assert (gone.objects, gone.bytes, gone.billable_bytes) == (
        12,
        sum(s for s, _ in expected.values()),
        young_billable + old_billable,
    )
    assert (gone.early_objects, gone.early_bytes, gone.owed_seconds) == (6, young_bytes, 6 * 20 * 86400)
    assert (cost.deleted["blob"].objects, cost.deleted["index"].objects, cost.deleted["manifest"].objects) == (4, 4, 2)
    assert cost.as_dict()["deleted"]["tag"]["early_objects"] == 1

    # The period before: only the old image was stored, from 40 days ago to that period's end; deleted after it, no fee.
    before = storage_cost_get(tenant=tenant, start=start - timedelta(hours=720), end=start)
    stored = int((start - (now - timedelta(days=40))).total_seconds())
    assert before.lines["deleted_storage"] == dollars(old_billable * stored, Decimal(7), tb_month)
    assert (before.lines["minimum_duration"], before.deleted_total.objects) == (zero, 6)
    # The period after: deleted before it, and the minimum already billed: nothing.
    after = storage_cost_get(tenant=tenant, start=end, end=end + timedelta(hours=720))
    assert (after.total, after.deleted_total.objects) == (Decimal(0), 0)

    # Legacy pricing: no minimum size or duration; a segment per object, for its time stored.
    _prices(settings, "legacy")
    legacy = storage_cost_get(tenant=tenant, start=start, end=end)
    young_raw = young_bytes
    old_raw = sum(size for (size, since) in expected.values() if since == now - timedelta(days=40))
    assert legacy.lines["deleted_storage"] == dollars(young_raw * lived + old_raw * in_period, Decimal(4), tb_month)
    assert legacy.lines["deleted_segments"] == dollars(6 * lived + 6 * in_period, Decimal("0.0000088"), MONTH_SECONDS)
    assert legacy.lines["minimum_duration"] == zero


@pytest.mark.django_db
def test_the_ledger_keeps_two_full_months_and_gc_prunes_the_rest(tenant):
    from gateway.registry.services.deletions import deleted_objects_prune, ledger_cutoff

    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert ledger_cutoff(now) == datetime(2026, 10, 1, tzinfo=UTC)
    assert ledger_cutoff(datetime(2026, 2, 28, 23, 59, tzinfo=UTC)) == datetime(2025, 12, 1, tzinfo=UTC)
    for n, at in enumerate((datetime(2026, 9, 30, 23, 59, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC), now)):
        DeletedObject.objects.create(
            tenant=tenant, kind="tag", key=f"t/{tenant.pk}/k{n}", size=50, stored_since=at - timedelta(days=1), deleted_at=at
        )
    assert deleted_objects_prune(tenant=tenant, now=now) == 1
    assert sorted(DeletedObject.objects.values_list("key", flat=True)) == [f"t/{tenant.pk}/k1", f"t/{tenant.pk}/k2"]
