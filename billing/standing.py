"""Where a tenant stands against its plan's limits: what the billing page and the API's billing usage read (decision 0046).

One query for the counted figures (stored bytes, private repositories, members, robots), the meter's
two for the month's egress (usage_period_get), and one Redis round trip for the pulls of the current
window (the pull limiter's read-only standing). Limits are the tenant's columns (what is enforced),
None = unlimited. Months are UTC calendar months, as the meter's hours are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import BigIntegerField, Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.limits import LIMIT_FIELDS, PULL_WINDOW_SECONDS, TenantLimits
from accounts.models import Membership, RobotAccount, Tenant
from billing.metering import hour_of
from billing.usage_selectors import usage_period_get
from gateway.registry.models import Blob, Manifest, Repository
from gateway.registry.pull_limits import pull_standing_get


@dataclass(frozen=True)
class Standing:
    """One limit: what the tenant uses against it (None: not measurable now, e.g. Redis down) and the limit (None: unlimited)."""

    key: str  # one of KEYS
    label: str
    used: int | None
    limit: int | None
    unit: str  # "bytes" or "count"

    @property
    def field(self) -> str:
        """The Tenant (and Plan) column of this limit."""
        return FIELDS[self.key]


# Each limit the page and the API show, and its Tenant/Plan column, in display order.
FIELDS = {
    "storage": "storage_quota_bytes",
    "private_repositories": "private_repositories_limit",
    "members": "members_limit",
    "robots": "robots_limit",
    "pulls": "pulls_per_window_authenticated",
    "egress": "egress_bytes_per_month_limit",
}
KEYS = tuple(FIELDS)


def month_start(moment: datetime) -> datetime:
    """The first instant of `moment`'s UTC calendar month."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    """The first instant of the UTC month after the one `start` opens."""
    return (start + timedelta(days=32)).replace(day=1)


PERIOD = re.compile(r"(\d{4})-(\d{2})")


def period_parse(value: str, *, now: datetime) -> datetime:
    """A UTC month given as YYYY-MM → its first instant; ValueError (a message for the caller) if malformed or not begun."""
    match = PERIOD.fullmatch(value)
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise ValueError("A month as YYYY-MM, e.g. 2026-03.")
    start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    if start > now:
        raise ValueError("That month has not begun.")
    return start


def month_usage_get(*, tenant: Tenant, start: datetime, now: datetime) -> dict[str, Any]:
    """usage_period_get over the UTC month opening at `start`, up to the end of the current hour if the month is running."""
    end = min(next_month(start), hour_of(now) + timedelta(hours=1))
    return usage_period_get(tenant=tenant, start=start, end=end)


def _total(queryset: QuerySet, aggregate: Sum | Count) -> Coalesce:
    rows = queryset.filter(tenant=OuterRef("pk")).order_by().values("tenant").annotate(total=aggregate).values("total")
    return Coalesce(Subquery(rows, output_field=BigIntegerField()), 0, output_field=BigIntegerField())


def tenant_counts_get(*, tenant: Tenant) -> dict[str, Any]:
    """In one query: the tenant's limits as stored now, and the figures each is counted on (as the limit checks count them)."""
    return (
        Tenant.objects.filter(pk=tenant.pk)
        .annotate(
            stored_bytes=_total(Blob.objects.all(), Sum("size")) + _total(Manifest.objects.all(), Sum("size")),
            private_repository_count=_total(
                Repository.objects.filter(visibility=Repository.Visibility.PRIVATE, deleted_name=""), Count("pk")
            ),
            member_count=_total(Membership.objects.all(), Count("pk")),
            robot_count=_total(RobotAccount.objects.active(), Count("pk")),
        )
        .values(*LIMIT_FIELDS, "stored_bytes", "private_repository_count", "member_count", "robot_count")
        .get()
    )


def billing_standing_get(*, tenant: Tenant, egress_bytes: int) -> list[Standing]:
    """Every limit of the tenant against its use: storage, private repositories, members, robots, authenticated pulls in
    the current PULL_WINDOW_SECONDS window, and `egress_bytes` (the caller's month_usage_get) this month."""
    row = tenant_counts_get(tenant=tenant)
    limits = TenantLimits(**{name: row[name] for name in LIMIT_FIELDS})
    pulls = pull_standing_get(tenant=tenant) if limits.pulls_per_window_authenticated is not None else None
    hours = PULL_WINDOW_SECONDS // 3600
    return [
        Standing("storage", "Storage", row["stored_bytes"], limits.storage_quota_bytes, "bytes"),
        Standing(
            "private_repositories",
            "Private repositories",
            row["private_repository_count"],
            limits.private_repositories_limit,
            "count",
        ),
        Standing("members", "Members", row["member_count"], limits.members_limit, "count"),
        Standing("robots", "Robot accounts", row["robot_count"], limits.robots_limit, "count"),
        Standing(
            "pulls",
            f"Authenticated pulls in the last {hours} hours",
            None if pulls is None else pulls.limit - pulls.remaining,  # unlimited budgets count nothing
            limits.pulls_per_window_authenticated,
            "count",
        ),
        Standing("egress", "Egress this month", egress_bytes, limits.egress_bytes_per_month_limit, "bytes"),
    ]
