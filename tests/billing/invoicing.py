"""Helpers of the invoice tests: plan changes at given instants (a frozen clock), usage rows, line summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from accounts.models import Tenant
from billing.models import Invoice, UsageRecord
from billing.models.usage import TENANT_TOTAL
from billing.services import subscription_change_plan, subscription_start

GB = 10**9


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(moment: datetime) -> time_machine.travel:
    """The clock frozen at `moment`."""
    return time_machine.travel(moment, tick=False)


def plan_history(tenant: Tenant, *changes: tuple[datetime, str]) -> None:
    """Subscribe at the first instant to the first plan, then change plan at each later instant, through the services."""
    (first, code), *rest = changes
    with at(first):
        subscription_start(tenant=tenant, plan_code=code)
    for moment, code in rest:
        with at(moment):
            subscription_change_plan(tenant=tenant, plan_code=code, actor="alice")


def usage_add(tenant: Tenant, *, start: datetime, hours: int, stored_bytes: int = 0, egress: dict[str, int] | None = None):
    """`stored_bytes` sampled in each of `hours` hours from `start`, and egress per repository in the first hour."""
    rows = [
        UsageRecord(
            tenant=tenant,
            repository=TENANT_TOTAL,
            hour=start + timedelta(hours=n),
            storage_byte_hours=stored_bytes,
            storage_sampled_at=start + timedelta(hours=n, minutes=5),
        )
        for n in range(hours)
    ]
    for repository, egress_bytes in (egress or {}).items():
        rows.append(UsageRecord(tenant=tenant, repository=repository, hour=start, pulls=3, egress_proxied_bytes=egress_bytes))
    UsageRecord.objects.bulk_create(rows)


def lines_of(invoice: Invoice) -> list[tuple[str, str, str, int, int]]:
    """Each line as (kind, quantity, unit, unit price, amount)."""
    return [
        (line.kind, f"{line.quantity:f}", line.unit, line.unit_price_minor, line.amount_minor)
        for line in invoice.lines.order_by("position")
    ]


def issue_after(tenant: Tenant, period_start: datetime) -> Invoice:
    """The tenant's invoice of the month opening at `period_start`, issued as the beat issues it after the month's end."""
    from billing.invoice_math import month_bounds
    from billing.invoicing import invoice_issue

    with at(month_bounds(period_start)[1] + timedelta(hours=1, minutes=13)):
        invoice = invoice_issue(tenant=tenant, period_start=period_start)
    assert invoice is not None, "no plan was in force in that month"
    return invoice
