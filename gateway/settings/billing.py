"""Payments (billing/payments; docs/decisions/0045), from the environment only; no secret has a default.

GATEWAY_BILLING_PROVIDER picks the payment provider: "stripe" (Checkout, the customer portal, webhooks at
/billing/webhooks/stripe/), "manual" (bank transfer, staff mark periods paid) or "" (none: no payments).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from gateway.settings import env as E

GATEWAY_BILLING_PROVIDER = E.choice("GATEWAY_BILLING_PROVIDER", "", ("", "stripe", "manual"))
# Days a subscription may stay past_due (a failed payment, or a manual period unpaid) before the tenant is suspended.
GATEWAY_BILLING_GRACE_DAYS = E.integer("GATEWAY_BILLING_GRACE_DAYS", 7, minimum=0, maximum=90)
# Stripe: the secret API key (sk_live_…/sk_test_…) and the webhook endpoint's signing secret (whsec_…).
GATEWAY_STRIPE_SECRET_KEY = E.string("GATEWAY_STRIPE_SECRET_KEY", "").strip()
GATEWAY_STRIPE_WEBHOOK_SECRET = E.string("GATEWAY_STRIPE_WEBHOOK_SECRET", "").strip()
# Where the SDK sends API calls (tests point it at a local stand-in; production leaves the default).
GATEWAY_STRIPE_API_BASE = E.url("GATEWAY_STRIPE_API_BASE", "https://api.stripe.com", schemes=("https", "http")).rstrip("/")
# A webhook signed longer ago than this is refused (replay protection; Stripe's SDK default is 300 s).
GATEWAY_STRIPE_WEBHOOK_TOLERANCE_SECONDS = E.integer("GATEWAY_STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1, maximum=3600)


def _origins(name: str, default: str) -> list[str]:
    """Space- or comma-separated origins (scheme://host[:port], no path), each checked."""
    origins = (E.string(name, default) or default).replace(",", " ").split()
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise ImproperlyConfigured(f"{name} lists origins like https://checkout.stripe.com, not {origin!r}.")
    return [origin.rstrip("/") for origin in origins]


# Where Stripe's hosted pages live (Checkout, the customer portal; a custom domain for them changes both): the billing
# page's subscribe and "Payment methods" forms redirect there, and CSP form-action must let them (decision 0053).
GATEWAY_STRIPE_PAGE_ORIGINS = _origins("GATEWAY_STRIPE_PAGE_ORIGINS", "https://checkout.stripe.com https://billing.stripe.com")


def stripe_form_action_origins() -> list[str]:
    """What CSP form-action adds for the payment provider: Stripe's page origins with Stripe, nothing otherwise."""
    return GATEWAY_STRIPE_PAGE_ORIGINS if GATEWAY_BILLING_PROVIDER == "stripe" else []


if GATEWAY_BILLING_PROVIDER == "stripe" and not (GATEWAY_STRIPE_SECRET_KEY and GATEWAY_STRIPE_WEBHOOK_SECRET):
    raise ImproperlyConfigured(
        "GATEWAY_BILLING_PROVIDER=stripe needs GATEWAY_STRIPE_SECRET_KEY and GATEWAY_STRIPE_WEBHOOK_SECRET."
    )
