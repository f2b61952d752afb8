"""A tenant's plan limits as one value: what billing writes (`tenant_limits_set`) and the registry reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from django.conf import settings

from accounts.locks import tenant_limit_lock
from accounts.models import Tenant
from gateway.core.errors import QuotaExceeded

# The pull-rate window: six hours, the window Docker Hub's `ratelimit-limit: N;w=21600` names.
PULL_WINDOW_SECONDS = 6 * 3600


@dataclass(frozen=True)
class TenantLimits:
    """Every limit a plan sets on a tenant; None means unlimited."""

    storage_quota_bytes: int | None = None
    private_repositories_limit: int | None = None
    members_limit: int | None = None
    robots_limit: int | None = None
    pulls_per_window_authenticated: int | None = None
    pulls_per_window_anonymous: int | None = None
    egress_bytes_per_month_limit: int | None = None

    def as_fields(self) -> dict[str, int | None]:
        """The Tenant columns and their values."""
        return asdict(self)


LIMIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TenantLimits))


def tenant_limits_get(*, tenant: Tenant) -> TenantLimits:
    """The tenant's limits as stored now (one query; the instance passed in may be stale)."""
    row = Tenant.objects.filter(pk=tenant.pk).values(*LIMIT_FIELDS).first() or {}
    return TenantLimits(**row)


def billing_url(*, tenant: Tenant) -> str:
    """Where the tenant's owners raise a limit: the organisation's billing page (the one place this URL is built)."""
    return f"{settings.EXTERNAL_URL}/orgs/{tenant.slug}/billing/"


def limit_check(*, tenant: Tenant, field: str, what: str, count: Callable[[], int]) -> None:
    """QuotaExceeded (403, DENIED on /v2/) naming the limit, when the `count()` existing `what` leave no room for one more.

    `field` is the Tenant column of the limit (e.g. "robots_limit"). With a limit, the tenant's row is locked
    for the caller's transaction before `count()` runs, so concurrent creations of one tenant cannot pass it together.
    """
    if field not in LIMIT_FIELDS or field == "storage_quota_bytes":
        raise ValueError(f"{field!r} is not a count limit")
    if Tenant.objects.filter(pk=tenant.pk).values_list(field, flat=True).first() is None:
        return  # unlimited: no lock taken
    limit = tenant_limit_lock(tenant=tenant, field=field)
    if limit is None:
        return
    existing = count()
    if existing >= limit:
        raise QuotaExceeded(
            f"{what} limit reached: the plan of {tenant.slug!r} allows {limit} {what}, it has {existing}; "
            f"raise the limit at {billing_url(tenant=tenant)}",
            extra={
                "limit": field.removesuffix("_limit"),
                "max": limit,
                "count": existing,
                "billing_url": billing_url(tenant=tenant),
            },
        )
