"""Stripe through its official SDK (docs/decisions/0045): Checkout for subscribing, the Billing Portal for payment
methods, webhooks verified with the SDK's own signature check, and an idempotency key on every mutating call.

Each key is derived from what makes the call unique (the tenant, the plan or subscription, the return URL, and the
newest provider state applied), so a retry of the same call, by the SDK or by a person clicking again, reuses it and
Stripe answers with the first result instead of making a second session or cancellation.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import stripe

from accounts.audit import audit_record
from accounts.models import Tenant
from billing.conf import app_settings
from billing.models import Subscription
from billing.payments.base import ProviderUnavailable, WebhookRejected, WebhookResult
from billing.payments.stripe_events import PROVIDER, stripe_event_apply
from billing.selectors import plan_get, subscription_get
from gateway.core.errors import Conflict, NotFound, ValidationError

PORTAL_KEY_SECONDS = 60  # a portal session is short-lived: a click a minute later gets a fresh one
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE, Subscription.Status.SUSPENDED)


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=2)


def client() -> stripe.StripeClient:
    """The SDK's client for the configured key and API base (cached per pair)."""
    return _client(app_settings.stripe_secret_key, app_settings.stripe_api_base)


def idempotency_key(operation: str, *parts: object) -> str:
    """`wharf-<operation>-<hash of parts>`: the same call gives the same key."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"wharf-{operation}-{digest}"


def _state_marker(subscription: Subscription | None) -> str:
    if subscription is None:
        return "none"
    return f"{subscription.status}:{subscription.provider_state_at.isoformat() if subscription.provider_state_at else ''}"


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _call(what: str, method: Any, params: dict[str, Any], key: str) -> Any:
    try:
        return method(params, {"idempotency_key": key})
    except stripe.StripeError as exc:
        message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
        raise ProviderUnavailable(f"Stripe could not {what}: {message}") from exc


class StripeProvider:
    name = PROVIDER
    has_portal = True

    def checkout_start(self, *, tenant: Tenant, plan_code: str, actor: str, return_url: str) -> str:
        """A Checkout Session (mode=subscription) for the plan's Stripe price; its URL. Refused when already subscribed."""
        plan = plan_get(code=plan_code)
        if plan is None:
            raise NotFound(f"No plan {plan_code!r}.")
        if not plan.is_active:
            raise ValidationError(f"Plan {plan_code!r} takes no new subscribers; choose another plan.")
        if not plan.stripe_price_id:
            raise ValidationError(f"Plan {plan.name} cannot be bought online (it has no Stripe price).")
        subscription = subscription_get(tenant=tenant)
        if self.plan_changes_in_portal(subscription=subscription):
            raise Conflict("This organisation already pays through Stripe: change the plan in the billing portal.")
        metadata = {"tenant_id": str(tenant.pk), "tenant": tenant.slug, "plan": plan.code}
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "success_url": _with_query(return_url, "checkout=success&session_id={CHECKOUT_SESSION_ID}"),
            "cancel_url": _with_query(return_url, "checkout=canceled"),
            "client_reference_id": str(tenant.pk),
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
        customer = subscription.provider_customer_id if subscription and subscription.provider == PROVIDER else ""
        if customer:
            params["customer"] = customer
        key = idempotency_key(
            "checkout", tenant.pk, plan.code, plan.stripe_price_id, customer, _state_marker(subscription), return_url
        )
        session = _call("start the checkout", client().v1.checkout.sessions.create, params, key)
        audit_record(action="billing.checkout", actor=actor, tenant=tenant, target=tenant.slug, detail={"plan": plan.code})
        return str(session.url)

    def plan_changes_in_portal(self, *, subscription: Subscription | None) -> bool:
        """A live Stripe subscription: a second Checkout would bill twice, so plan changes go through the portal."""
        return bool(
            subscription
            and subscription.provider == PROVIDER
            and subscription.provider_subscription_id
            and subscription.status in LIVE
        )

    def portal_open(self, *, tenant: Tenant, return_url: str) -> str:
        """A Billing Portal session for the tenant's Stripe customer; its URL."""
        subscription = subscription_get(tenant=tenant)
        if subscription is None or subscription.provider != PROVIDER or not subscription.provider_customer_id:
            raise Conflict("There is no payment method yet: subscribe to a plan first.")
        customer = subscription.provider_customer_id
        params = {"customer": customer, "return_url": return_url}
        key = idempotency_key("portal", tenant.pk, customer, return_url, int(time.time()) // PORTAL_KEY_SECONDS)
        session = _call("open the billing portal", client().v1.billing_portal.sessions.create, params, key)
        return str(session.url)

    def webhook_handle(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Verify the Stripe-Signature (HMAC-SHA256 with the endpoint's secret, within the tolerance), then apply."""
        try:
            event = client().construct_event(
                body,
                headers.get("Stripe-Signature"),
                app_settings.stripe_webhook_secret,
                tolerance=app_settings.stripe_webhook_tolerance,
            )
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"Bad Stripe-Signature: {exc.user_message or exc}") from None
        except ValueError:  # not UTF-8, not JSON, or not a snapshot event
            raise WebhookRejected("The body is not a Stripe event.") from None
        return stripe_event_apply(event=event.to_dict())

    def subscription_cancel(self, *, tenant: Tenant, actor: str) -> Subscription:
        """Ask Stripe to end the subscription at the end of the paid period; the customer.subscription.deleted event
        then cancels it here (until then it stays as it is)."""
        subscription = subscription_get(tenant=tenant)
        if subscription is None or subscription.provider != PROVIDER or not subscription.provider_subscription_id:
            raise Conflict("This organisation has no Stripe subscription to cancel.")
        if subscription.status == Subscription.Status.CANCELED:
            return subscription
        sub_id = subscription.provider_subscription_id
        key = idempotency_key("cancel", tenant.pk, sub_id, _state_marker(subscription))

        def update(params: Any, options: Any) -> Any:
            return client().v1.subscriptions.update(sub_id, params, options)

        _call("cancel the subscription", update, {"cancel_at_period_end": True}, key)
        audit_record(
            action="subscription.cancel",
            actor=actor,
            tenant=tenant,
            target=tenant.slug,
            detail={"provider": PROVIDER, "at_period_end": True},
        )
        return subscription
