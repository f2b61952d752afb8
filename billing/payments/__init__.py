"""Payments (docs/decisions/0045): the provider GATEWAY_BILLING_PROVIDER selects, and what the faces call.

The dashboard's billing page and the billing API use only these: `provider_get()` (None: this gateway takes no
payments, so offer no buttons), `checkout_start`, `portal_open`, `subscription_cancel`. Webhooks reach the provider
through billing/views.py.
"""

from __future__ import annotations

from accounts.models import Tenant
from billing.conf import app_settings
from billing.models import Subscription
from billing.payments.base import PaymentProvider, ProviderUnavailable, WebhookRejected, WebhookResult
from gateway.core.errors import NotFound

__all__ = [
    "PaymentProvider",
    "ProviderUnavailable",
    "WebhookRejected",
    "WebhookResult",
    "checkout_start",
    "portal_open",
    "provider_get",
    "subscription_cancel",
]


def provider_get() -> PaymentProvider | None:
    """The configured payment provider, or None when GATEWAY_BILLING_PROVIDER is empty."""
    name = app_settings.provider
    if name == "stripe":
        from billing.payments.stripe_provider import StripeProvider

        return StripeProvider()
    if name == "manual":
        from billing.payments.manual import ManualProvider

        return ManualProvider()
    return None


def _required() -> PaymentProvider:
    provider = provider_get()
    if provider is None:
        raise NotFound("This gateway takes no payments.")
    return provider


def checkout_start(*, tenant: Tenant, plan_code: str, actor: str, return_url: str) -> str:
    """Start subscribing the tenant to `plan_code`; the URL to send the browser to (Stripe Checkout, or back to
    `return_url` with `?payment=<reference>` for a bank transfer)."""
    return _required().checkout_start(tenant=tenant, plan_code=plan_code, actor=actor, return_url=return_url)


def portal_open(*, tenant: Tenant, return_url: str) -> str:
    """The URL of the provider's payment-method page (only where `provider_get().has_portal`)."""
    return _required().portal_open(tenant=tenant, return_url=return_url)


def subscription_cancel(*, tenant: Tenant, actor: str) -> Subscription:
    """Cancel the tenant's paid subscription (Stripe: at the period's end, by its webhook; manual: now)."""
    return _required().subscription_cancel(tenant=tenant, actor=actor)
