"""The subscription writes payments share (Stripe events, manual payments): link the provider, move the period, paid,
failed, ended. Each runs inside its caller's transaction, after billing.services took the locks (billing/locks.py)."""

from __future__ import annotations

from datetime import datetime

from accounts.models import Tenant
from billing.conf import app_settings
from billing.models import Plan, Subscription
from billing.services import subscription_change_plan, subscription_status_set

Status = Subscription.Status


def subscription_link(
    *,
    subscription: Subscription,
    provider: str,
    customer_id: str = "",
    subscription_id: str = "",
    state_at: datetime | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> None:
    """Record the provider and its ids (a blank id keeps the one known), the newest state applied, and the period."""
    changes: dict[str, object] = {"provider": provider}
    if customer_id:
        changes["provider_customer_id"] = customer_id
    if subscription_id:
        changes["provider_subscription_id"] = subscription_id
    if state_at is not None and (subscription.provider_state_at is None or state_at > subscription.provider_state_at):
        changes["provider_state_at"] = state_at
    if period is not None and period[1] > period[0]:
        changes["current_period_start"], changes["current_period_end"] = period
    for name, value in changes.items():
        setattr(subscription, name, value)
    Subscription.objects.filter(pk=subscription.pk).update(**changes)


def subscription_plan_apply(*, tenant: Tenant, plan: Plan, actor: str) -> Subscription:
    """Put the tenant on `plan` (starting a subscription if it has none), writing its limits; nothing when it is on it."""
    return subscription_change_plan(tenant=tenant, plan_code=plan.code, actor=actor)


def subscription_paid(*, tenant: Tenant, actor: str) -> Subscription:
    """Paid: active again, dunning's clock stopped, an unpaid suspension lifted (never an operator's)."""
    return subscription_status_set(tenant=tenant, status=Status.ACTIVE, actor=actor)


def subscription_payment_failed(*, tenant: Tenant, subscription: Subscription, actor: str) -> Subscription:
    """A payment failed: past_due (dunning's clock starts), unless already suspended for it or canceled."""
    if subscription.status in (Status.SUSPENDED, Status.CANCELED, Status.PAST_DUE):
        return subscription
    return subscription_status_set(tenant=tenant, status=Status.PAST_DUE, actor=actor)


def subscription_ended(*, tenant: Tenant, subscription: Subscription, actor: str) -> Subscription:
    """The paid subscription ended: canceled, and back on GATEWAY_BILLING_DEFAULT_PLAN's limits when one is set."""
    default = app_settings.default_plan
    if default and subscription.plan.code != default and Plan.objects.filter(code=default, is_active=True).exists():
        subscription_change_plan(tenant=tenant, plan_code=default, actor=actor)
    return subscription_status_set(tenant=tenant, status=Status.CANCELED, actor=actor)
