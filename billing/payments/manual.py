"""Bank transfer, for self-hosted gateways (docs/decisions/0045): subscribing records a payment request with a reference
to quote on the transfer; staff mark a period paid (`manual_payment_mark_paid`, `manage.py billing_payments paid`),
which puts the tenant on the plan for one period and activates (or reactivates) it. No portal, no webhooks."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Tenant
from billing import locks
from billing.models import ManualPayment, Plan, Subscription
from billing.payments import state
from billing.payments.base import WebhookRejected, WebhookResult
from billing.services import _month_later, _plan_for_subscribing
from gateway.core.errors import Conflict, NotFound, ValidationError

PROVIDER = "manual"
Status = Subscription.Status


def _reference(tenant: Tenant) -> str:
    return f"WHARF-{tenant.pk}-{secrets.token_hex(4).upper()}"


@transaction.atomic
def manual_payment_request(*, tenant: Tenant, plan_code: str, actor: str) -> ManualPayment:
    """The tenant's open request to pay for `plan_code` by transfer (one per tenant: asking again updates its plan)."""
    plan = _plan_for_subscribing(plan_code)
    locks.subscription_lock(tenant=tenant)  # serialises requests of one tenant (lock order: subscription first)
    payment = locks.manual_request_lock(tenant=tenant)
    if payment is None:
        payment = ManualPayment(tenant=tenant, reference=_reference(tenant), requested_by=actor)
    payment.plan, payment.amount_minor, payment.currency = plan, plan.monthly_price_minor, plan.currency
    payment.save()
    audit_record(
        action="billing.manual.request",
        actor=actor,
        tenant=tenant,
        target=tenant.slug,
        detail={"plan": plan.code, "reference": payment.reference},
    )
    return payment


@transaction.atomic
def manual_payment_mark_paid(*, tenant: Tenant, actor: str, bank_reference: str = "") -> ManualPayment:
    """Staff confirm a transfer: the open request (or, with none, the next period of the current plan) is paid; the tenant
    gets the plan's limits for one period and is active again (an unpaid suspension lifted). Locked; audited.

    A new subscription or a change of plan starts its period now; a renewal continues from the current period's end, so
    an overdue period is the one paid for.
    """
    subscription = locks.subscription_lock(tenant=tenant)
    payment = locks.manual_request_lock(tenant=tenant)
    if payment is None:
        if subscription is None:
            raise NotFound(f"Tenant {tenant.slug!r} has neither a payment request nor a subscription to renew.")
        plan: Plan = subscription.plan
        payment = ManualPayment(tenant=tenant, reference=_reference(tenant), plan=plan, requested_by=actor)
        payment.amount_minor, payment.currency = plan.monthly_price_minor, plan.currency
    plan = payment.plan
    renewal = subscription is not None and subscription.plan_id == plan.pk and subscription.status != Status.CANCELED
    start = subscription.current_period_end if renewal and subscription else timezone.now()
    subscription = state.subscription_plan_apply(tenant=tenant, plan=plan, actor=actor)
    subscription = state.subscription_paid(tenant=tenant, actor=actor)
    state.subscription_link(subscription=subscription, provider=PROVIDER, period=(start, _month_later(start)))
    payment.status, payment.paid_at, payment.marked_by = ManualPayment.Status.PAID, timezone.now(), actor
    payment.bank_reference = (bank_reference or "").strip()[:255]
    payment.period_start, payment.period_end = subscription.current_period_start, subscription.current_period_end
    payment.save()
    audit_record(
        action="billing.manual.paid",
        actor=actor,
        tenant=tenant,
        target=tenant.slug,
        detail={"plan": plan.code, "reference": payment.reference, "period_end": payment.period_end.isoformat()},
    )
    return payment


class ManualProvider:
    name = PROVIDER
    has_portal = False

    def checkout_start(self, *, tenant: Tenant, plan_code: str, actor: str, return_url: str) -> str:
        """Record the request (the billing page shows its reference and amount); back to `return_url`."""
        payment = manual_payment_request(tenant=tenant, plan_code=plan_code, actor=actor)
        return f"{return_url}{'&' if '?' in return_url else '?'}payment={payment.reference}"

    def plan_changes_in_portal(self, *, subscription: Subscription | None) -> bool:
        """Never: every bank-transfer plan change is a new request."""
        return False

    def portal_open(self, *, tenant: Tenant, return_url: str) -> str:
        raise ValidationError("Payments here are by bank transfer: there are no payment methods to manage.")

    def webhook_handle(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        raise WebhookRejected("Bank transfers send no webhooks.")

    @transaction.atomic
    def subscription_cancel(self, *, tenant: Tenant, actor: str) -> Subscription:
        """Cancel now (nothing is charged automatically, so nothing runs on): the open request goes, limits fall back."""
        subscription = locks.subscription_lock(tenant=tenant)
        if subscription is None or subscription.status == Status.CANCELED:
            raise Conflict("This organisation has no subscription to cancel.")
        ManualPayment.objects.filter(tenant=tenant, status=ManualPayment.Status.REQUESTED).delete()
        return state.subscription_ended(tenant=tenant, subscription=subscription, actor=actor)
