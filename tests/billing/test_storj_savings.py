"""What GC and retention would save at Storj, against real rows and SeaweedFS: the priced objects are those a real run deletes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.storj_cost import MONTH_SECONDS, TB, dollars, month_of, storage_cost_get
from billing.storj_savings import gc_savings_get, retention_savings_get
from gateway.registry.models import Blob, JobRun, Manifest, Repository, Tag
from gateway.registry.services.gc import gc_run_to_completion
from gateway.registry.services.manifests import manifest_delete
from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set
from gateway.storage import keys

pytestmark = pytest.mark.django_db


def _listing(blob_store, tenant) -> dict[str, int]:
    return {o.key: o.size for o in blob_store.list(keys.tenant_prefix(tenant.pk))}


def _rows() -> tuple[list, list, list]:
    return (
        sorted(Blob.objects.values_list("digest", "gc_candidate_since")),
        sorted(Manifest.objects.values_list("digest", "gc_candidate_since")),
        sorted(Tag.objects.values_list("name", "manifest_id")),
    )


def _age(days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    for model in (Blob, Manifest):
        model.objects.update(created_at=then)
    Tag.objects.update(last_pushed_at=then)


def test_gc_savings_are_what_a_run_deletes_priced_and_young_objects_save_nothing_yet(reg, tenant, blob_store):
    reg.push_image("app", "keep", [b"kept layer " * 100])
    reg.push_image("app", "old", [b"doomed layer " * 9000])  # 117 kB: over the 50 kB minimum
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference="old", actor="test")
    before_rows, before_objects = _rows(), _listing(blob_store, tenant)

    young = gc_savings_get(tenant=tenant)
    assert young.counts == {"manifest": 1, "blob": 1, "index": 1} and young.complete
    # All three were written just now: Storj bills them 30 days whatever GC does, so this month saves nothing.
    assert (young.young_objects, young.storage_per_month) == (3, Decimal("0E-10"))
    assert young.early_deletion_owed > 0
    assert _rows() == before_rows and JobRun.objects.count() == 0  # a preview changes nothing

    _age(60)
    old = gc_savings_get(tenant=tenant)
    assert old.young_objects == 0 and old.early_deletion_owed == Decimal("0E-10")
    assert old.storage_per_month == dollars(old.billable_bytes * MONTH_SECONDS, Decimal(7), TB * MONTH_SECONDS)

    untagged = Manifest.objects.get(tenant=tenant, tags__isnull=True).digest
    report = gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    after_objects = _listing(blob_store, tenant)
    gone = {key: size for key, size in before_objects.items() if key not in after_objects}
    assert len(gone) == old.objects == 3
    assert sum(gone.values()) == old.bytes
    # The month's cost prices what the run deleted (the deletion ledger): the three objects, and the tag deleted before.
    start, end = month_of(timezone.now())
    cost = storage_cost_get(tenant=tenant, start=start, end=end)
    deleted = {kind: (t.objects, t.bytes) for kind, t in cost.deleted.items() if t.objects}
    assert set(deleted) == {"blob", "index", "manifest", "tag"} and cost.deleted_total.objects == 4
    assert deleted["blob"] == (1, report.bytes_freed - deleted["manifest"][1])
    assert sum(n for _, n in deleted.values()) - deleted["tag"][1] == sum(gone.values())
    assert deleted["tag"] == (1, keys.tag_object_size("old", untagged))
    # The manifest, blob and index were 60 days old: no minimum-duration fee. The tag lived a moment: 30 days of 50 kB.
    assert cost.deleted_total.early_objects == 1
    owed = cost.deleted["tag"].owed_seconds
    assert 30 * 86400 - 60 <= owed <= 30 * 86400
    assert cost.lines["minimum_duration"] == dollars(50_000 * owed, Decimal(7), TB * MONTH_SECONDS)
    # Two of the three (the manifest, the index object) are under 50 kB and billed as 50 kB.
    assert old.billable_bytes == 50_000 * 2 + len(b"doomed layer " * 9000)


def test_retention_savings_are_the_tag_objects_and_what_gc_then_frees(reg, tenant, blob_store, settings):
    reg.push_image("app", "1", [b"first layer " * 10])
    reg.push_image("app", "2", [b"second layer " * 10])
    reg.push_image("web", "1", [b"web layer " * 10])
    reg.push_image("web", "junk", [b"junk layer " * 10])
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="web"), reference="junk", actor="test")
    retention_policy_set(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), keep_last=1)
    Tag.objects.filter(repository__name="app", name="1").update(last_pushed_at=timezone.now() - timedelta(days=1))
    _age(45)
    before_rows, before_objects = _rows(), _listing(blob_store, tenant)

    saved = retention_savings_get(tenant=tenant)
    gc_alone = gc_savings_get(tenant=tenant)
    # Retention frees app:1 (its tag object, manifest, layer and index), not web's junk (that is GC's alone).
    assert saved.counts == {"tag": 1, "manifest": 1, "blob": 1, "index": 1} and saved.complete
    assert gc_alone.counts == {"manifest": 1, "blob": 1, "index": 1}
    assert saved.young_objects == 0 and saved.per_month == dollars(
        saved.billable_bytes * MONTH_SECONDS, Decimal(7), TB * MONTH_SECONDS
    )
    assert _rows() == before_rows and JobRun.objects.count() == 0  # the tag deletion was rolled back

    retention_apply_to_completion(tenant=tenant)
    gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    after_objects = _listing(blob_store, tenant)
    gone = {key: size for key, size in before_objects.items() if key not in after_objects}
    assert len(gone) == saved.objects + gc_alone.objects == 7
    assert sum(gone.values()) == saved.bytes + gc_alone.bytes


def test_legacy_savings_count_segments_and_no_minimums(reg, tenant, settings):
    from gateway.settings.storj_prices import MODELS

    settings.GATEWAY_STORJ_PRICES = {**MODELS["legacy"], "model": "legacy", "segment_bytes": 64 * 1024 * 1024}
    reg.push_image("app", "old", [b"x" * 1000])
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference="old", actor="test")
    saved = gc_savings_get(tenant=tenant)
    # The manifest, its layer and config (the image's only one here) and their index objects, one segment each;
    # no minimum duration in legacy: objects written now save their whole month.
    assert (saved.objects, saved.young_objects, saved.segments, saved.billable_bytes) == (5, 0, 5, saved.bytes)
    assert saved.segments_per_month == dollars(5, Decimal("0.0000088"), 1)
    assert saved.storage_per_month == dollars(saved.bytes * MONTH_SECONDS, Decimal(4), TB * MONTH_SECONDS)
