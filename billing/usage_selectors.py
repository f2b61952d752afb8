"""Reads of the billing meter: a tenant's metered usage for a period (invoices, the billing page) and storage drift (staff)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Func, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from accounts.models import Tenant
from billing.metering import hour_of
from billing.models import StorageDrift, UsageRecord
from billing.models.usage import TENANT_TOTAL

GB = 10**9  # storage providers (Storj included) bill decimal gigabytes

_TRAFFIC = ("pulls", "egress_proxied_bytes", "egress_redirect_bytes")


def _sums(queryset: QuerySet[UsageRecord]) -> dict[str, Any]:
    return queryset.aggregate(
        **{name: Coalesce(Sum(name), 0) for name in (*_TRAFFIC, "storage_byte_hours")},
        hours_sampled=Count("id", filter=Q(storage_sampled_at__isnull=False)),
    )


def usage_period_get(*, tenant: Tenant, start: datetime, end: datetime) -> dict[str, Any]:
    """The tenant's metered usage in the UTC hours from `start` (included) to `end` (excluded), both on the hour.

    Pulls, egress (proxied, redirected, both), storage byte-hours and GB-hours (decimal GB, from
    the tenant-wide hourly samples) and `hours_sampled` (hours without a sample bill no storage),
    in all and per repository by name (repository storage counts shared blobs in each). Two queries.
    """
    if hour_of(start) != start or hour_of(end) != end:
        raise ValueError("start and end must be aware datetimes on the hour (UTC)")
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    rows = UsageRecord.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
    traffic = _sums(rows.exclude(repository=TENANT_TOTAL))
    storage = _sums(rows.filter(repository=TENANT_TOTAL))
    per_repository = (
        rows.exclude(repository=TENANT_TOTAL)
        .values("repository")
        .annotate(**{name: Sum(name) for name in (*_TRAFFIC, "storage_byte_hours")})
        .order_by("repository")
    )
    repositories: list[dict[str, Any]] = []
    for row in per_repository:
        figures: dict[str, Any] = dict(row)
        figures["egress_bytes"] = figures["egress_proxied_bytes"] + figures["egress_redirect_bytes"]
        figures["storage_gb_hours"] = _gb(figures["storage_byte_hours"])
        repositories.append(figures)
    return {
        "start": start,
        "end": end,
        **{name: traffic[name] for name in _TRAFFIC},
        "egress_bytes": traffic["egress_proxied_bytes"] + traffic["egress_redirect_bytes"],
        "storage_byte_hours": storage["storage_byte_hours"],
        "storage_gb_hours": _gb(storage["storage_byte_hours"]),
        "hours_sampled": storage["hours_sampled"],
        "repositories": repositories,
    }


def _gb(byte_hours: int) -> Decimal:
    return Decimal(byte_hours) / GB


def storage_drift_list(
    *, since: date, until: date, tenant: Tenant | None = None, drifted_only: bool = False
) -> QuerySet[StorageDrift]:
    """Staff only (every tenant unless `tenant`): reconciliation rows from `since` to `until` (both included), largest drift first."""
    if until < since:
        raise ValueError("until must not be before since")
    drifts = StorageDrift.objects.filter(day__gte=since, day__lte=until)
    if tenant is not None:
        drifts = drifts.filter(tenant=tenant)
    if drifted_only:
        drifts = drifts.exclude(difference_bytes=0, missing_objects=0, unexpected_objects=0)
    return (
        drifts.select_related("tenant")
        .annotate(abs_difference=Func(F("difference_bytes"), function="ABS"))
        .order_by("-abs_difference", "-day", "tenant_id")
    )
