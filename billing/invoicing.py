"""Monthly invoices: generate (idempotent per tenant and month), issue (number and open), estimate (docs/decisions/0044).

An invoice bills one UTC calendar month: each plan in force in it (SubscriptionPlanInterval rows),
prorated by the seconds it was in force, then the overage of the plan in force at the month's end
(usage_period_get: storage GB-months over its quota, egress GB over its monthly limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from billing import locks
from billing.conf import app_settings
from billing.invoice_math import LineDraft, PlanSpan, month_bounds, month_of, overage_lines, plan_lines
from billing.metering import hour_of
from billing.models import Invoice, InvoiceLine, SubscriptionPlanInterval
from billing.usage_selectors import usage_period_get
from gateway.core.errors import ValidationError


@dataclass(frozen=True)
class InvoiceEstimate:
    """The current month's invoice so far (not stored): what the billing page shows as the upcoming invoice."""

    period_start: datetime
    period_end: datetime
    usage_until: datetime  # overage counts the usage metered before this hour's end
    currency: str
    lines: list[LineDraft]
    subtotal_minor: int
    total_minor: int


def plan_spans_get(*, tenant: Tenant, start: datetime, end: datetime) -> list[PlanSpan]:
    """The plans in force for the tenant between `start` and `end`, clipped to them, in time order (an open one runs to `end`)."""
    intervals = (
        SubscriptionPlanInterval.objects.filter(tenant=tenant, started_at__lt=end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start))
        .select_related("plan")
        .order_by("started_at", "pk")
    )
    spans = [PlanSpan(i.plan, max(i.started_at, start), min(i.ended_at or end, end)) for i in intervals]
    return [s for s in spans if s.end > s.start]


def _lines_compute(*, tenant: Tenant, start: datetime, end: datetime, usage_end: datetime) -> tuple[str, list[LineDraft]]:
    spans = plan_spans_get(tenant=tenant, start=start, end=end)
    if not spans:
        return "", []
    currencies = {s.plan.currency for s in spans}
    if len(currencies) > 1:
        raise ValidationError(f"The plans of {start:%Y-%m} bill in different currencies ({', '.join(sorted(currencies))}).")
    usage = usage_period_get(tenant=tenant, start=start, end=usage_end)
    lines = plan_lines(spans, start=start, end=end) + overage_lines(spans[-1].plan, usage, start=start, end=end)
    return currencies.pop(), lines


def _totals(charges: list[int], credits: list[int]) -> tuple[int, int]:
    subtotal = sum(charges)
    return subtotal, max(0, subtotal + sum(credits))


@transaction.atomic
def invoice_generate(*, tenant: Tenant, period_start: datetime) -> Invoice | None:
    """The tenant's invoice for the month starting at `period_start` (an ended month), created as a draft if new.

    Idempotent per (tenant, month): a draft's computed lines are replaced by the same computation
    (staff's credit lines stay); an open, paid or void invoice is returned unchanged. Concurrent
    calls meet at the (tenant, period) unique constraint, then lock the row. None: no plan was in
    force in that month (nothing to bill; no row is written).
    """
    start, end = month_bounds(period_start)
    if end > timezone.now():
        raise ValidationError(f"{start:%Y-%m} has not ended; invoice_estimate shows the month so far.")
    currency, lines = _lines_compute(tenant=tenant, start=start, end=end, usage_end=end)
    existing = Invoice.objects.filter(tenant=tenant, period_start=start).values_list("pk", flat=True).first()
    if not lines and existing is None:
        return None
    invoice, _ = Invoice.objects.get_or_create(
        tenant=tenant,
        period_start=start,
        defaults={"period_end": end, "issuer": app_settings.invoice_issuer, "currency": currency},
    )
    locked = locks.invoice_lock(pk=invoice.pk)
    assert locked is not None  # found inside this transaction; an invoice is deleted only with its tenant
    invoice = locked
    if invoice.status != Invoice.Status.DRAFT:
        return invoice
    credits = list(invoice.lines.filter(kind=InvoiceLine.Kind.CREDIT).order_by("position", "pk"))
    invoice.lines.all().delete()
    rows = [InvoiceLine(invoice=invoice, position=n, **vars(line)) for n, line in enumerate(lines, start=1)]
    for n, credit in enumerate(credits, start=len(rows) + 1):
        credit.pk, credit.position = None, n
        rows.append(credit)
    InvoiceLine.objects.bulk_create(rows)
    invoice.subtotal_minor, invoice.total_minor = _totals(
        [line.amount_minor for line in lines], [c.amount_minor for c in credits]
    )
    invoice.currency = currency or invoice.currency
    invoice.save(update_fields=["subtotal_minor", "total_minor", "currency", "updated_at"])
    return invoice


@transaction.atomic
def invoice_issue(*, tenant: Tenant, period_start: datetime) -> Invoice | None:
    """Generate the month's invoice (invoice_generate) and, if it is a draft, issue it: the issuer's next number, open.

    Locks the invoice, then the issuer's sequence, so numbers are gapless and in issuing order. An
    invoice whose total is 0 is paid as it is issued (nothing to collect). Idempotent: an issued
    invoice is returned as it is, so running it twice or concurrently issues one invoice, one number.
    """
    invoice = invoice_generate(tenant=tenant, period_start=period_start)
    if invoice is None or invoice.status != Invoice.Status.DRAFT:
        return invoice
    sequence = locks.invoice_sequence_lock(issuer=invoice.issuer)
    now = timezone.now()
    invoice.billed_to = billed_to(Tenant.objects.get(pk=tenant.pk))  # as stored now, whatever the caller's copy says
    invoice.sequence = sequence.next_number
    invoice.number = f"{invoice.issuer}-{sequence.next_number:06d}"
    invoice.issued_at = now
    invoice.status = Invoice.Status.OPEN if invoice.total_minor > 0 else Invoice.Status.PAID
    invoice.paid_at = None if invoice.total_minor > 0 else now
    invoice.save(update_fields=["billed_to", "sequence", "number", "issued_at", "status", "paid_at", "updated_at"])
    sequence.next_number += 1
    sequence.save(update_fields=["next_number", "updated_at"])
    return invoice


def billed_to(tenant: Tenant) -> str:
    """Who an invoice is addressed to: the tenant's name (or slug) and slug, copied at issue."""
    return f"{tenant.name or tenant.slug} ({tenant.slug})"


def invoice_issue_by_id(*, tenant_id: int, period_start: datetime) -> Invoice | None:
    """invoice_issue for the task: None when the tenant is gone or being deleted."""
    tenant = Tenant.objects.filter(pk=tenant_id).exclude(status=Tenant.Status.DELETING).first()
    return None if tenant is None else invoice_issue(tenant=tenant, period_start=period_start)


def invoice_tenant_ids(*, period_start: datetime, after_id: int, limit: int) -> list[int]:
    """Ids of tenants (after `after_id`, ascending, at most `limit`) with a plan in force in the month: the beat task's cursor."""
    start, end = month_bounds(period_start)
    intervals = SubscriptionPlanInterval.objects.filter(tenant_id__gt=after_id, started_at__lt=end).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=start)
    )
    ids = intervals.exclude(tenant__status=Tenant.Status.DELETING).values_list("tenant_id", flat=True)
    return list(ids.distinct().order_by("tenant_id")[:limit])


def previous_month(moment: datetime) -> datetime:
    """The start of the UTC month before the one `moment` is in (what the beat run on the 1st bills)."""
    return month_of(month_of(moment) - timedelta(days=1))


def invoice_estimate(*, tenant: Tenant) -> InvoiceEstimate | None:
    """The current month's invoice as it stands (not stored; None without a plan): the plan in force now is billed to the
    month's end, as it will be unless it changes; overage from the usage metered so far (up to the current hour's end)."""
    now = timezone.now()
    start, end = month_bounds(month_of(now))
    usage_end = min(hour_of(now) + timedelta(hours=1), end)
    currency, lines = _lines_compute(tenant=tenant, start=start, end=end, usage_end=usage_end)
    if not lines:
        return None
    subtotal, total = _totals([line.amount_minor for line in lines], [])
    return InvoiceEstimate(start, end, usage_end, currency, lines, subtotal, total)
