"""A tenant's plan limits as one value: what billing writes (`tenant_limits_set`) and the registry reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from accounts.models import Tenant

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
