"""Applying Stripe's webhook events to subscriptions (docs/decisions/0045): once per event id, in any order, never backwards.

Each event runs in one transaction: its ProviderEvent row first (the unique (provider, event id) makes a replay, or a
twin delivered at the same moment, find it and do nothing), then the subscription under billing.services' locks.
An event older (`created`) than the newest state already applied is recorded as stale and changes nothing but
missing ids; a payment failure of an invoice already recorded as paid is stale whatever its time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Tenant
from billing import locks
from billing.models import Plan, ProviderEvent, Subscription
from billing.payments import state
from billing.payments.base import WebhookRejected, WebhookResult
from billing.services import subscription_status_set

PROVIDER = "stripe"
ACTOR = "stripe"
Outcome = ProviderEvent.Outcome
Status = Subscription.Status
# Stripe's subscription statuses → ours (None: nothing to apply, e.g. a checkout not yet paid).
STATUS_MAP: dict[str, str | None] = {
    "active": Status.ACTIVE,
    "trialing": Status.TRIALING,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,  # Stripe gave up retrying: dunning's grace period decides the suspension
    "canceled": Status.CANCELED,
    "incomplete": None,
    "incomplete_expired": None,
    "paused": None,
}


def _object_tenant_id(obj: dict[str, Any]) -> str:
    """The tenant id Wharf put in the metadata (checkout session, its subscription, the subscription's invoices)."""
    parent = (obj.get("parent") or {}).get("subscription_details") or obj.get("subscription_details") or {}
    for metadata in (obj.get("metadata"), parent.get("metadata")):
        if isinstance(metadata, dict) and str(metadata.get("tenant_id", "")).isdigit():
            return str(metadata["tenant_id"])
    reference = str(obj.get("client_reference_id") or "")
    return reference if reference.isdigit() else ""


def _subscription_id(obj: dict[str, Any]) -> str:
    if obj.get("object") == "subscription":
        return str(obj.get("id") or "")
    parent = (obj.get("parent") or {}).get("subscription_details") or {}
    value = parent.get("subscription") or obj.get("subscription") or ""
    return str(value.get("id", "") if isinstance(value, dict) else value)


def _customer_id(obj: dict[str, Any]) -> str:
    value = obj.get("customer") or ""
    return str(value.get("id", "") if isinstance(value, dict) else value)


def _tenant_of(obj: dict[str, Any]) -> Tenant | None:
    """The tenant the object is about (by Wharf's metadata, else by known ids); None for one being deleted."""
    tenant: Tenant | None = None
    tenant_id = _object_tenant_id(obj)
    if tenant_id:
        tenant = Tenant.objects.filter(pk=int(tenant_id)).first()
    for field, value in (("provider_subscription_id", _subscription_id(obj)), ("provider_customer_id", _customer_id(obj))):
        if tenant is None and value:
            found = Subscription.objects.filter(provider=PROVIDER, **{field: value}).select_related("tenant").first()
            tenant = found.tenant if found is not None else None
    return None if tenant is None or tenant.status == Tenant.Status.DELETING else tenant


def _period(obj: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The subscription's current period (on its first item since API 2025-03-31, on the subscription before)."""
    items = (obj.get("items") or {}).get("data") or [{}]
    start = items[0].get("current_period_start") or obj.get("current_period_start")
    end = items[0].get("current_period_end") or obj.get("current_period_end")
    if isinstance(start, int) and isinstance(end, int):
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    return None


def _price_plan(obj: dict[str, Any]) -> Plan | None:
    items = (obj.get("items") or {}).get("data") or []
    price = (items[0].get("price") or {}) if items else {}
    price_id = price.get("id") if isinstance(price, dict) else price
    return Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None


def _checkout_completed(tenant: Tenant, subscription: Subscription | None, obj: dict[str, Any], at: datetime) -> str:
    if obj.get("mode") != "subscription":
        return "not a subscription checkout"
    plan = Plan.objects.filter(code=str((obj.get("metadata") or {}).get("plan", ""))).first()
    if plan is None:
        return "the checkout names no plan of this gateway"
    subscription = state.subscription_plan_apply(tenant=tenant, plan=plan, actor=ACTOR)
    if obj.get("payment_status") in ("paid", "no_payment_required"):
        subscription = state.subscription_paid(tenant=tenant, actor=ACTOR)
    state.subscription_link(
        subscription=subscription,
        provider=PROVIDER,
        customer_id=_customer_id(obj),
        subscription_id=str(obj.get("subscription") or ""),
        state_at=at,
    )
    return f"subscribed to {plan.code}"


def _subscription_updated(tenant: Tenant, subscription: Subscription | None, obj: dict[str, Any], at: datetime) -> str:
    status = STATUS_MAP.get(str(obj.get("status")))
    plan = _price_plan(obj)
    if subscription is None and (plan is None or status is None):
        return "no subscription here yet and nothing to start one with"
    known = subscription.provider_subscription_id if subscription else ""
    if known and known != obj.get("id") and subscription and subscription.status != Status.CANCELED:
        return f"not the tenant's current subscription ({known})"
    if status == Status.CANCELED:
        return _subscription_deleted(tenant, subscription, obj, at)
    if plan is not None:
        subscription = state.subscription_plan_apply(tenant=tenant, plan=plan, actor=ACTOR)
    assert subscription is not None
    if status == Status.PAST_DUE:
        subscription = state.subscription_payment_failed(tenant=tenant, subscription=subscription, actor=ACTOR)
    elif status == Status.ACTIVE:
        subscription = state.subscription_paid(tenant=tenant, actor=ACTOR)
    elif status == Status.TRIALING and subscription.status != Status.SUSPENDED:
        subscription = subscription_status_set(tenant=tenant, status=status, actor=ACTOR)
    state.subscription_link(
        subscription=subscription,
        provider=PROVIDER,
        customer_id=_customer_id(obj),
        subscription_id=str(obj.get("id") or ""),
        state_at=at,
        period=_period(obj),
    )
    return f"status {obj.get('status')}" + (f", plan {plan.code}" if plan else "")


def _subscription_deleted(tenant: Tenant, subscription: Subscription | None, obj: dict[str, Any], at: datetime) -> str:
    if subscription is None:
        return "no subscription here"
    known = subscription.provider_subscription_id
    if known and known != obj.get("id"):
        return f"not the tenant's current subscription ({known})"
    subscription = state.subscription_ended(tenant=tenant, subscription=subscription, actor=ACTOR)
    state.subscription_link(subscription=subscription, provider=PROVIDER, state_at=at)
    return "canceled"


def _invoice_paid(tenant: Tenant, subscription: Subscription | None, obj: dict[str, Any], at: datetime) -> str:
    if subscription is None or not _subscription_id(obj):
        return "not a subscription's invoice"
    subscription = state.subscription_paid(tenant=tenant, actor=ACTOR)
    state.subscription_link(subscription=subscription, provider=PROVIDER, customer_id=_customer_id(obj), state_at=at)
    return "paid"


def _invoice_payment_failed(tenant: Tenant, subscription: Subscription | None, obj: dict[str, Any], at: datetime) -> str:
    if subscription is None or not _subscription_id(obj):
        return "not a subscription's invoice"
    subscription = state.subscription_payment_failed(tenant=tenant, subscription=subscription, actor=ACTOR)
    state.subscription_link(subscription=subscription, provider=PROVIDER, customer_id=_customer_id(obj), state_at=at)
    return "payment failed"


Handler = Callable[[Tenant, Subscription | None, dict[str, Any], datetime], str]
HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_updated,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
}


def _parts(event: dict[str, Any]) -> tuple[str, str, datetime, dict[str, Any]]:
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    obj = (event.get("data") or {}).get("object")
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(created, int)):
        raise WebhookRejected("The event has no id, type or created time.")
    if not isinstance(obj, dict):
        raise WebhookRejected("The event has no data.object.")
    return event_id, event_type, datetime.fromtimestamp(created, UTC), obj


def _is_stale(event_type: str, obj: dict[str, Any], subscription: Subscription | None, at: datetime) -> bool:
    if subscription is not None and subscription.provider_state_at is not None and at < subscription.provider_state_at:
        return True
    # A failure reported after the same invoice was paid (Stripe's retry succeeded; the events crossed).
    return (
        event_type == "invoice.payment_failed"
        and ProviderEvent.objects.filter(
            provider=PROVIDER, object_id=str(obj.get("id") or ""), event_type="invoice.paid", outcome=Outcome.APPLIED
        ).exists()
    )


@transaction.atomic
def stripe_event_apply(*, event: dict[str, Any]) -> WebhookResult:
    """Record the verified event once (a replay returns duplicate=True) and apply what is newer; one transaction."""
    event_id, event_type, at, obj = _parts(event)
    try:
        with transaction.atomic():
            row = ProviderEvent.objects.create(
                provider=PROVIDER,
                event_id=event_id,
                event_type=event_type,
                object_id=str(obj.get("id") or "")[:255],
                occurred_at=at,
                outcome=Outcome.IGNORED,
            )
    except IntegrityError:
        seen = ProviderEvent.objects.get(provider=PROVIDER, event_id=event_id)
        return WebhookResult(event_id=event_id, event_type=event_type, outcome=seen.outcome, duplicate=True)
    handler = HANDLERS.get(event_type)
    tenant = _tenant_of(obj) if handler else None
    if handler is None or tenant is None:
        row.detail = "not an event Wharf acts on" if handler is None else "no tenant of this gateway"
    else:
        row.tenant = tenant
        subscription = locks.subscription_lock(tenant=tenant)
        if _is_stale(event_type, obj, subscription, at):
            row.outcome, row.detail = Outcome.STALE, "older than the state already applied"
            if subscription is not None and not subscription.provider_customer_id:  # ids are facts, whatever the order
                state.subscription_link(subscription=subscription, provider=PROVIDER, customer_id=_customer_id(obj))
        else:
            row.outcome, row.detail = Outcome.APPLIED, handler(tenant, subscription, obj, at)[:500]
    row.save(update_fields=["tenant", "outcome", "detail", "updated_at"])
    return WebhookResult(event_id=event_id, event_type=event_type, outcome=row.outcome)
