"""What garbage collection and retention would save at Storj (docs/decisions/0048), priced with Storj's rules.

GC: its dry run (`gc_preview` with grace 0: everything unreferenced now) lists the manifests and
blobs it would delete; each blob is two objects (its data and its index object). Retention: its
dry run (`retention_plan`) selects tags; in a transaction that is rolled back those tag rows are
deleted and GC's dry run runs again, so what retention frees is what GC would then free beyond
what it frees already, plus the tag objects. Nothing is changed (both dry runs roll back; the
tag rows are locked only for that transaction).

Saved per month: each object would otherwise be billed for the next 720 hours; deleted now, it is
still billed until it is as old as the minimum storage duration (30 days), so deleting a young
object saves less in its first month (`early_deletion_*` says how much is still owed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from billing.conf import StorjPrices, app_settings
from billing.storj_cost import (
    MONTH_SECONDS,
    TB,
    StorjCost,
    billable_bytes,
    billed_seconds,
    dollars,
    month_of,
    segments,
    storage_cost_get,
)
from gateway.registry.models import Blob, Manifest, Tag
from gateway.registry.services.gc import GcReport, gc_preview
from gateway.registry.services.retention_rules import retention_plan
from gateway.storage.keys import blob_index_size, tag_object_size


@dataclass(frozen=True)
class DoomedObject:
    """One bucket object a deletion would remove: its kind, identity, size and when it was written."""

    kind: str  # "blob", "index", "manifest" or "tag"
    name: str  # the digest, or repository@digest / repository:tag
    size: int
    stored_at: datetime | None  # None: not listed by the dry run (beyond its listing cap), taken as old


@dataclass
class Savings:
    """What deleting some objects now saves over the next month at Storj, with the inputs."""

    objects: int = 0
    bytes: int = 0
    billable_bytes: int = 0
    segments: int = 0
    young_objects: int = 0  # younger than the minimum storage duration
    storage_per_month: Decimal = Decimal(0)
    segments_per_month: Decimal = Decimal(0)
    early_deletion_owed: Decimal = Decimal(0)  # what the young ones are still billed for after deletion
    complete: bool = True  # False: the dry run stopped at its budget or listing cap (the figures are a floor)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def per_month(self) -> Decimal:
        return self.storage_per_month + self.segments_per_month

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items()}, "per_month": self.per_month}


def savings_price(*, objects: list[DoomedObject], now: datetime, prices: StorjPrices) -> Savings:
    """Price deleting `objects` at `now`: storage and segment fees saved over the next 720 hours, minimum duration applied."""
    out = Savings()
    month_end = now + timedelta(seconds=MONTH_SECONDS)
    saved_byte_seconds = saved_segment_seconds = owed_byte_seconds = owed_segment_seconds = 0
    for o in objects:
        stored_at = o.stored_at if o.stored_at is not None else now - timedelta(days=prices.min_duration_days)
        billed = min(MONTH_SECONDS, billed_seconds(stored_at=stored_at, deleted_at=now, start=now, end=month_end, prices=prices))
        size, count = billable_bytes(o.size, prices), segments(o.size, prices)
        out.objects += 1
        out.bytes += o.size
        out.billable_bytes += size
        out.segments += count
        out.young_objects += billed > 0
        saved_byte_seconds += size * (MONTH_SECONDS - billed)
        saved_segment_seconds += count * (MONTH_SECONDS - billed)
        owed_byte_seconds += size * billed
        owed_segment_seconds += count * billed
        out.counts[o.kind] = out.counts.get(o.kind, 0) + 1
    out.storage_per_month = dollars(saved_byte_seconds, prices.storage_tb_month, TB * MONTH_SECONDS)
    out.segments_per_month = dollars(saved_segment_seconds, prices.segment_month, MONTH_SECONDS)
    out.early_deletion_owed = dollars(owed_byte_seconds, prices.storage_tb_month, TB * MONTH_SECONDS) + dollars(
        owed_segment_seconds, prices.segment_month, MONTH_SECONDS
    )
    return out


def _gc_objects(*, tenant: Tenant, report: GcReport) -> tuple[list[DoomedObject], bool]:
    """The objects a GC dry run would delete (two queries for when each was written); and whether the listing is complete."""
    wanted = {(m["repository"], m["digest"]) for m in report.manifests}
    manifests = (
        Manifest.objects.filter(
            tenant=tenant, repository__name__in={r for r, _ in wanted}, digest__in={d for _, d in wanted}
        ).values_list("repository__name", "digest", "size", "created_at")
        if wanted
        else []
    )
    objects = [DoomedObject("manifest", f"{r}@{d}", size, at) for r, d, size, at in manifests if (r, d) in wanted]
    digests = {b["digest"] for b in report.blobs}
    blobs = (
        Blob.objects.filter(tenant=tenant, digest__in=digests).values_list("digest", "size", "storage_key", "created_at")
        if digests
        else []
    )
    for digest, size, key, at in blobs:
        objects.append(DoomedObject("blob", digest, size, at))
        objects.append(DoomedObject("index", digest, blob_index_size(digest, size, key), at))
    counted_manifests = report.counts.get("manifests_deleted", 0)
    counted_blobs = report.counts.get("blobs_deleted", 0)
    complete = report.done and counted_manifests == len(report.manifests) and counted_blobs == len(report.blobs)
    if not complete:
        # Beyond the dry run's listing: their bytes are known in total only; priced as old objects, one each.
        rest = report.bytes_freed - sum(o.size for o in objects if o.kind in ("blob", "manifest"))
        unlisted = counted_manifests - len(report.manifests) + counted_blobs - len(report.blobs)
        if unlisted > 0 and rest > 0:
            objects.append(DoomedObject("unlisted", f"{unlisted} objects", rest, None))
    return objects, complete


def _identity(o: DoomedObject) -> tuple[str, str]:
    return (o.kind, o.name)


def gc_savings_get(*, tenant: Tenant, now: datetime | None = None) -> Savings:
    """What a garbage collection now (grace 0: everything unreferenced) would save a month at Storj. Changes nothing."""
    now = now or timezone.now()
    objects, complete = _gc_objects(tenant=tenant, report=gc_preview(tenant=tenant, grace=timedelta(0)))
    savings = savings_price(objects=objects, now=now, prices=app_settings.storj_prices)
    savings.complete = complete
    return savings


class _Rollback(Exception):
    pass


def retention_savings_get(*, tenant: Tenant, now: datetime | None = None) -> Savings:
    """What applying the tenant's retention policies now, then GC, would save a month beyond GC alone. Changes nothing.

    The tags retention selects are deleted in a transaction that is rolled back, and GC's dry
    run looks at what that leaves; the tag objects themselves are saved too.
    """
    now = now or timezone.now()
    prices = app_settings.storj_prices
    plan = retention_plan(tenant=tenant, now=now)
    if not plan.delete:
        return Savings(complete=plan.complete)
    alone, alone_complete = _gc_objects(tenant=tenant, report=gc_preview(tenant=tenant, grace=timedelta(0)))
    try:
        with transaction.atomic():
            Tag.objects.filter(tenant=tenant, pk__in=[v.tag_id for v in plan.delete]).delete()
            after, after_complete = _gc_objects(tenant=tenant, report=gc_preview(tenant=tenant, grace=timedelta(0)))
            raise _Rollback
    except _Rollback:
        pass
    freed = {_identity(o) for o in alone}
    objects = [o for o in after if _identity(o) not in freed and o.kind != "unlisted"]
    objects += [DoomedObject("tag", f"{v.repository}:{v.name}", tag_object_size(v.name, v.digest), v.pushed) for v in plan.delete]
    savings = savings_price(objects=objects, now=now, prices=prices)
    savings.complete = plan.complete and plan.delete_count == len(plan.delete) and alone_complete and after_complete
    return savings


@dataclass(frozen=True)
class StorjOverview:
    """The dashboard's figures: this calendar month's cost at Storj (and the plan's price) and what GC and retention would save."""

    cost: StorjCost
    gc: Savings
    retention: Savings

    @property
    def savings_per_month(self) -> Decimal:
        return self.gc.per_month + self.retention.per_month


def storj_overview_get(*, tenant: Tenant, now: datetime | None = None) -> StorjOverview:
    """The tenant's cost at Storj for the current UTC calendar month and what GC and retention would save. Reads only."""
    now = now or timezone.now()
    start, end = month_of(now)
    return StorjOverview(
        cost=storage_cost_get(tenant=tenant, start=start, end=end, now=now),
        gc=gc_savings_get(tenant=tenant, now=now),
        retention=retention_savings_get(tenant=tenant, now=now),
    )
