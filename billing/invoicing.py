"""Monthly invoices: generate (idempotent per tenant and month), issue (number and open), estimate (docs/decisions/0044);
staff void an open invoice and credit a month (docs/decisions/0051).

An invoice bills one UTC calendar month: each plan in force in it (SubscriptionPlanInterval rows),
prorated by the seconds it was in force, then the overage of the plan in force at the month's end
(usage_period_get: storage GB-months over its quota, egress GB over its monthly limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Tenant
from billing import locks
from billing.conf import app_settings
from billing.invoice_math import LineDraft, PlanSpan, month_bounds, month_of, overage_lines, plan_lines
from billing.metering import hour_of
from billing.models import Invoice, InvoiceLine, SubscriptionPlanInterval
from billing.usage_selectors import usage_period_get
from gateway.core.errors import Conflict, NotFound, ValidationError

MAX_CREDIT_MINOR = 2**31 - 1  # one credit line at most (a plan's price has the same bound): typos of a few digits are 400s
MAX_DESCRIPTION = InvoiceLine._meta.get_field("description").max_length or 255
MAX_VOID_REASON = Invoice._meta.get_field("void_reason").max_length or 500
CREDIT_UNIT = "credit"  # a credit line's unit: quantity 1 of its (negative) amount


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


def _month_invoice_locked(*, tenant: Tenant, start: datetime, end: datetime, currency: Callable[[], str]) -> Invoice:
    """The tenant's invoice row of the month [start, end), created as a draft in `currency()` if it has none, locked.

    Concurrent creators (the beat's generate, a staff credit) meet at the (tenant, period_start) unique constraint
    (get_or_create), then wait on the row lock. Call inside a transaction."""
    pk = Invoice.objects.filter(tenant=tenant, period_start=start).values_list("pk", flat=True).first()
    if pk is None:
        invoice, _ = Invoice.objects.get_or_create(
            tenant=tenant,
            period_start=start,
            defaults={"period_end": end, "issuer": app_settings.invoice_issuer, "currency": currency()},
        )
        pk = invoice.pk
    locked = locks.invoice_lock(pk=pk)
    assert locked is not None  # found inside this transaction; an invoice is deleted only with its tenant
    return locked


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
    if not lines and not Invoice.objects.filter(tenant=tenant, period_start=start).exists():
        return None
    invoice = _month_invoice_locked(tenant=tenant, start=start, end=end, currency=lambda: currency)
    if invoice.status != Invoice.Status.DRAFT:
        return invoice
    credits = list(invoice.lines.filter(kind=InvoiceLine.Kind.CREDIT).order_by("position", "pk"))
    if credits and currency and currency != invoice.currency:
        # Relabelling staff's credits in another currency would change what they are worth: refuse, loudly.
        raise ValidationError(
            f"The credits of {start:%Y-%m} are in {invoice.currency} but its plans bill in {currency}; "
            "the credits have to be re-made by hand."
        )
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
    """The current month's invoice as it stands (not stored; None without a plan or credit): the plan in force now is
    billed to the month's end, as it will be unless it changes; overage from the usage metered so far (up to the current
    hour's end); the credits staff have put on the month's draft so far (invoice_credit_add)."""
    now = timezone.now()
    start, end = month_bounds(month_of(now))
    usage_end = min(hour_of(now) + timedelta(hours=1), end)
    currency, lines = _lines_compute(tenant=tenant, start=start, end=end, usage_end=usage_end)
    stored = InvoiceLine.objects.filter(
        invoice__tenant=tenant, invoice__period_start=start, invoice__status=Invoice.Status.DRAFT, kind=InvoiceLine.Kind.CREDIT
    ).select_related("invoice")
    credits = list(stored.order_by("position", "pk"))
    if not lines and not credits:
        return None
    currency = currency or credits[0].invoice.currency
    subtotal, total = _totals([line.amount_minor for line in lines], [c.amount_minor for c in credits])
    return InvoiceEstimate(start, end, usage_end, currency, lines + [_line_draft(c) for c in credits], subtotal, total)


def _line_draft(line: InvoiceLine) -> LineDraft:
    return LineDraft(line.kind, line.description, line.quantity, line.unit, line.unit_price_minor, line.amount_minor)


@transaction.atomic
def invoice_void(*, tenant: Tenant, number: str, reason: str, actor: str) -> Invoice:
    """Void the tenant's open invoice `number`: status void, voided_at and the reason recorded, its number kept (numbers
    stay gapless); audited. Locks the invoice row. Idempotent: a void invoice is returned unchanged (not audited again).
    NotFound: no such issued invoice of the tenant (a draft has no number); Conflict: it is paid (credit a later month)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the invoice is voided (the reason is kept with it and in the audit log).")
    if len(reason) > MAX_VOID_REASON:
        raise ValidationError(f"The reason has at most {MAX_VOID_REASON} characters.")
    found = Invoice.objects.filter(tenant=tenant, number=number).values_list("pk", flat=True).first()
    invoice = None if found is None else locks.invoice_lock(pk=found)
    if invoice is None or invoice.status == Invoice.Status.DRAFT:
        raise NotFound(f"No invoice {number!r}.")
    if invoice.status == Invoice.Status.VOID:
        return invoice
    if invoice.status == Invoice.Status.PAID:
        raise Conflict(
            f"Invoice {number} is paid, and a paid invoice is not voided but credited: add a credit to a month not "
            "yet issued (by default the current one)."
        )
    invoice.status, invoice.voided_at, invoice.void_reason = Invoice.Status.VOID, timezone.now(), reason
    invoice.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
    audit_record(
        action="invoice.void",
        actor=actor,
        tenant=tenant,
        target=number,
        detail={"reason": reason, "total_minor": invoice.total_minor, "currency": invoice.currency},
    )
    return invoice


def _credit_currency(*, tenant: Tenant, start: datetime, end: datetime, currency: str | None) -> str:
    """The currency a new draft of the month is in: its plans' (as invoice_generate will bill them), else `currency`."""
    currencies = {span.plan.currency for span in plan_spans_get(tenant=tenant, start=start, end=end)}
    if len(currencies) > 1:
        raise ValidationError(f"The plans of {start:%Y-%m} bill in different currencies ({', '.join(sorted(currencies))}).")
    if currencies:
        return currencies.pop()
    if currency is None:
        raise ValidationError(f"{tenant.slug!r} has no plan in {start:%Y-%m}: say the credit's currency.")
    return currency


@transaction.atomic
def invoice_credit_add(
    *,
    tenant: Tenant,
    amount_minor: int,
    description: str,
    actor: str,
    period: datetime | None = None,
    currency: str | None = None,
) -> Invoice:
    """Credit the tenant `amount_minor` (> 0, stored as a negative credit line) on its invoice of the month opening at
    `period` (default: the current UTC month), a draft created if the month has none yet; totals re-computed; audited.

    The month's row meets concurrent writers (invoice_generate/issue, another credit) at its (tenant, period) unique
    constraint, then its row lock, so a credit lands before the month is issued or is refused after: Conflict when that
    month's invoice is issued (open, paid or void: issued invoices never change). ValidationError, nothing written: a
    bad amount, description, currency (not the invoice's) or month (not begun)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or not 0 < amount_minor <= MAX_CREDIT_MINOR:
        raise ValidationError(f"A credit is a whole number of minor units from 1 to {MAX_CREDIT_MINOR}.")
    description = (description or "").strip()
    if not description or len(description) > MAX_DESCRIPTION:
        raise ValidationError(
            f"A credit needs a description of 1 to {MAX_DESCRIPTION} characters (it is printed on the invoice)."
        )
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationError("currency is a three-letter ISO 4217 code, e.g. USD.")
    now = timezone.now()
    try:
        start, end = month_bounds(month_of(now) if period is None else period)
    except ValueError as error:
        raise ValidationError(str(error)) from error
    if start > now:
        raise ValidationError(f"{start:%Y-%m} has not begun; credit the current month or an earlier one not yet issued.")
    if Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.DELETING).exists():
        raise Conflict(f"Tenant {tenant.slug!r} is being deleted; its invoices go with it.")
    invoice = _month_invoice_locked(
        tenant=tenant,
        start=start,
        end=end,
        currency=lambda: _credit_currency(tenant=tenant, start=start, end=end, currency=currency),
    )
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(
            f"The invoice of {start:%Y-%m} is issued ({invoice.number}, {invoice.status}) and issued invoices never change: "
            "credit a later month (by default the current one)."
        )
    if currency is not None and currency != invoice.currency:
        raise ValidationError(f"The invoice of {start:%Y-%m} is in {invoice.currency}; a credit in {currency} cannot go on it.")
    lines = list(invoice.lines.all())
    line = InvoiceLine.objects.create(
        invoice=invoice,
        position=max((existing_line.position for existing_line in lines), default=0) + 1,
        kind=InvoiceLine.Kind.CREDIT,
        description=description,
        quantity=1,
        unit=CREDIT_UNIT,
        unit_price_minor=-amount_minor,
        amount_minor=-amount_minor,
    )
    lines.append(line)
    invoice.subtotal_minor, invoice.total_minor = _totals(
        [x.amount_minor for x in lines if x.kind != InvoiceLine.Kind.CREDIT],
        [x.amount_minor for x in lines if x.kind == InvoiceLine.Kind.CREDIT],
    )
    invoice.save(update_fields=["subtotal_minor", "total_minor", "updated_at"])
    audit_record(
        action="invoice.credit",
        actor=actor,
        tenant=tenant,
        target=f"{tenant.slug} {start:%Y-%m}",
        detail={"amount_minor": amount_minor, "currency": invoice.currency, "description": description, "invoice": invoice.pk},
    )
    return invoice
