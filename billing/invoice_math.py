"""Invoice arithmetic, pure (no database): month bounds, prorated plan lines, overage lines (docs/decisions/0044).

Exact until the last step: fractions of a month and of a GB are `Fraction`s, and each amount is
rounded once, half-up to the minor unit. Plan lines round their running total, so the lines of a
month add up to the rounded exact sum and never to more than a month of the dearest plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from billing.models import InvoiceLine, Plan

GB = 10**9  # decimal gigabytes, as storage providers bill (the meter's unit too)
QUANTITY_PLACES = Decimal("0.000001")  # InvoiceLine.quantity's six decimal places


@dataclass(frozen=True)
class PlanSpan:
    """A plan in force from `start` to `end` (inside one period)."""

    plan: Plan
    start: datetime
    end: datetime


@dataclass(frozen=True)
class LineDraft:
    """An invoice line before it is stored (also what an estimate shows)."""

    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price_minor: int
    amount_minor: int


def month_bounds(period_start: datetime) -> tuple[datetime, datetime]:
    """The calendar month starting at `period_start`, which must be the 1st, 00:00 UTC (aware)."""
    if period_start.tzinfo is None or period_start.utcoffset() != timedelta(0):
        raise ValueError("period_start must be an aware UTC datetime")
    if period_start != month_of(period_start):
        raise ValueError(f"period_start must be the first of a month at 00:00 UTC, not {period_start.isoformat()}")
    start = period_start.astimezone(UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=year, month=month)


def month_of(moment: datetime) -> datetime:
    """The start of the UTC calendar month that `moment` falls in."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def half_up(value: Fraction) -> int:
    """`value` rounded half-up to a whole number (amounts are never negative here)."""
    return math.floor(value + Fraction(1, 2))


def _quantity(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)


def _seconds(delta: timedelta) -> Fraction:
    return Fraction(delta.days * 86400 + delta.seconds) + Fraction(delta.microseconds, 10**6)


def _span_description(span: PlanSpan, whole: bool) -> str:
    if whole:
        return f"{span.plan.name} plan, {span.start:%B %Y}"
    return f"{span.plan.name} plan, {span.start:%d %b %H:%M} – {span.end:%d %b %H:%M} UTC (prorated)"


def plan_lines(spans: list[PlanSpan], *, start: datetime, end: datetime) -> list[LineDraft]:
    """One line per span: the plan's monthly price times the share of the period's seconds it was in force.

    Spans must lie inside [start, end), in time order, without overlap. The amount of a line is the
    half-up rounded running total minus the previous one, so the lines sum to the rounded exact total.
    """
    month = _seconds(end - start)
    lines: list[LineDraft] = []
    exact = Fraction(0)
    for span in spans:
        if not (start <= span.start < span.end <= end):
            raise ValueError(f"plan span {span.start.isoformat()}–{span.end.isoformat()} is not inside the period")
        share = _seconds(span.end - span.start) / month
        before = half_up(exact)
        exact += share * span.plan.monthly_price_minor
        whole = share == 1
        lines.append(
            LineDraft(
                kind=InvoiceLine.Kind.BASE if whole else InvoiceLine.Kind.PRORATION,
                description=_span_description(span, whole),
                quantity=_quantity(share),
                unit="month",
                unit_price_minor=span.plan.monthly_price_minor,
                amount_minor=half_up(exact) - before,
            )
        )
    return lines


def overage_lines(plan: Plan, usage: dict[str, Any], *, start: datetime, end: datetime) -> list[LineDraft]:
    """Storage beyond the plan's quota in GB-months and egress beyond its monthly limit in GB, each at the plan's price.

    A plan with no limit (None) or no overage price (0: the limit is hard) bills none; nothing is negative,
    and an excess worth less than half a minor unit gets no line (a line of 0 is noise). GB-months = GB-hours / the hours of the month, GB = 10^9 bytes.
    """
    lines: list[LineDraft] = []
    hours = _seconds(end - start) / 3600
    if plan.storage_quota_bytes is not None and plan.storage_overage_minor_per_gb > 0:
        over = Fraction(int(usage["storage_byte_hours"]), GB) / hours - Fraction(plan.storage_quota_bytes, GB)
        if half_up(over * plan.storage_overage_minor_per_gb) > 0:
            lines.append(
                LineDraft(
                    kind=InvoiceLine.Kind.STORAGE_OVERAGE,
                    description=f"Storage beyond the {_gb(plan.storage_quota_bytes)} GB included",
                    quantity=_quantity(over),
                    unit="GB-month",
                    unit_price_minor=plan.storage_overage_minor_per_gb,
                    amount_minor=half_up(over * plan.storage_overage_minor_per_gb),
                )
            )
    if plan.egress_bytes_per_month_limit is not None and plan.egress_overage_minor_per_gb > 0:
        over = Fraction(int(usage["egress_bytes"]) - plan.egress_bytes_per_month_limit, GB)
        if half_up(over * plan.egress_overage_minor_per_gb) > 0:
            lines.append(
                LineDraft(
                    kind=InvoiceLine.Kind.EGRESS_OVERAGE,
                    description=f"Egress beyond the {_gb(plan.egress_bytes_per_month_limit)} GB included",
                    quantity=_quantity(over),
                    unit="GB",
                    unit_price_minor=plan.egress_overage_minor_per_gb,
                    amount_minor=half_up(over * plan.egress_overage_minor_per_gb),
                )
            )
    return lines


def _gb(byte_count: int) -> str:
    return f"{Decimal(byte_count) / GB:f}".rstrip("0").rstrip(".") if byte_count % GB else str(byte_count // GB)
