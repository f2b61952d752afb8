"""Reads of plans, subscriptions and invoices (each tenant-scoped read filters by the tenant first)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from accounts.models import Tenant
from billing.models import Invoice, InvoiceLine, ManualPayment, Plan, Subscription


def _lines() -> Prefetch:
    """An invoice's lines, in order (a new Prefetch per query: Django may annotate one as it uses it)."""
    return Prefetch("lines", queryset=InvoiceLine.objects.order_by("position", "pk"))


def plan_list(*, active_only: bool = False) -> QuerySet[Plan]:
    """Every plan (or only those open to new subscribers), cheapest first."""
    plans = Plan.objects.all()
    return plans.filter(is_active=True) if active_only else plans


def plan_get(*, code: str) -> Plan | None:
    """The plan with this code, or None."""
    return Plan.objects.filter(code=code).first()


def subscription_get(*, tenant: Tenant) -> Subscription | None:
    """The tenant's subscription with its plan, or None (no subscription: the tenant's limits are whatever was set)."""
    return Subscription.objects.select_related("plan").filter(tenant=tenant).first()


def invoice_list(
    *,
    tenant: Tenant,
    include_drafts: bool = False,
    period_start: datetime | None = None,
    status: str | None = None,
    with_lines: bool = False,
) -> QuerySet[Invoice]:
    """The tenant's invoices, newest month first; issued ones only unless `include_drafts` (staff's view); only the
    month opening at `period_start` or in `status` if given; with their lines prefetched in order if `with_lines`."""
    invoices = Invoice.objects.filter(tenant=tenant)
    if not include_drafts:
        invoices = invoices.exclude(status=Invoice.Status.DRAFT)
    if period_start is not None:
        invoices = invoices.filter(period_start=period_start)
    if status is not None:
        invoices = invoices.filter(status=status)
    return invoices.prefetch_related(_lines()) if with_lines else invoices


def invoice_get(*, tenant: Tenant, number: str | None = None, pk: int | None = None) -> Invoice | None:
    """One of the tenant's invoices by number (or pk, for drafts) with its lines prefetched in order; None if not the tenant's."""
    if (number is None) == (pk is None):
        raise ValueError("give exactly one of number and pk")
    invoices = Invoice.objects.filter(tenant=tenant).select_related("tenant")
    invoices = invoices.filter(number=number) if pk is None else invoices.filter(pk=pk)
    return invoices.prefetch_related(_lines()).first()


def manual_payment_open_get(*, tenant: Tenant) -> ManualPayment | None:
    """The tenant's open bank-transfer request (reference, amount, plan) or None: what the billing page tells owners to pay."""
    payments = ManualPayment.objects.select_related("plan").filter(tenant=tenant, status=ManualPayment.Status.REQUESTED)
    return payments.order_by("pk").first()
