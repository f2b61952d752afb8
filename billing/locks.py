"""Lock querysets of billing (house style rule 5).

Lock order: a ProviderEvent row (its insert, payments), the Plan row, then Subscription rows (pk order), the
tenant's open ManualPayment request, then the tenant's row (taken by accounts.services.tenant_limits_set's UPDATE
or accounts.tenant_admin's tenant_lock).
Invoices: the Invoice row, then its issuer's InvoiceSequence row (billing/invoicing.py); voiding and crediting take the
Invoice row only.
"""

from __future__ import annotations

from accounts.models import Tenant
from billing.models import Invoice, InvoiceSequence, ManualPayment, Plan, Subscription


def plan_lock(*, code: str) -> Plan | None:
    """The plan with this code, FOR NO KEY UPDATE, or None."""
    return Plan.objects.select_for_update(no_key=True).filter(code=code).order_by("pk").first()


def subscription_lock(*, tenant: Tenant) -> Subscription | None:
    """The tenant's subscription with its plan, FOR NO KEY UPDATE (of the subscription only), or None."""
    return (
        Subscription.objects.select_for_update(no_key=True, of=("self",))
        .select_related("plan")
        .filter(tenant=tenant)
        .order_by("pk")
        .first()
    )


def subscriptions_of_plan_lock(*, plan: Plan) -> list[Subscription]:
    """Every subscription to `plan` with its tenant, FOR NO KEY UPDATE, in pk order."""
    return list(
        Subscription.objects.select_for_update(no_key=True, of=("self",))
        .select_related("tenant")
        .filter(plan=plan)
        .order_by("pk")
    )


def manual_request_lock(*, tenant: Tenant) -> ManualPayment | None:
    """The tenant's open bank-transfer request, FOR NO KEY UPDATE, or None (taken after the subscription's lock)."""
    return (
        ManualPayment.objects.select_for_update(no_key=True)
        .select_related("plan")
        .filter(tenant=tenant, status=ManualPayment.Status.REQUESTED)
        .order_by("pk")
        .first()
    )


def invoice_lock(*, pk: int) -> Invoice | None:
    """The invoice, FOR NO KEY UPDATE (its lines are changed only under it), or None. Lock order: invoice, then sequence."""
    return Invoice.objects.select_for_update(no_key=True).filter(pk=pk).order_by("pk").first()


def invoice_sequence_lock(*, issuer: str) -> InvoiceSequence:
    """The issuer's number sequence (created at 1 if new), FOR NO KEY UPDATE: issuing serialises on it, so numbers have no gaps."""
    InvoiceSequence.objects.get_or_create(issuer=issuer)
    return InvoiceSequence.objects.select_for_update(no_key=True).filter(issuer=issuer).order_by("pk").get()
