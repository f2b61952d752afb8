"""Payments' settings (gateway/settings/billing.py): Stripe needs both of its secrets, nothing has a secret default."""

from __future__ import annotations

import pytest

from tests.core.test_settings import _import_settings

PROD = {
    "DJANGO_SECRET_KEY": "x" * 40,
    "AWS_ACCESS_KEY_ID": "a",
    "AWS_SECRET_ACCESS_KEY": "b",
    "GATEWAY_TOKEN_KEYS_DIR": "/tmp",
    "GATEWAY_ENCRYPTION_KEY": "e" * 40,
}


@pytest.mark.parametrize(
    "env",
    [
        {"GATEWAY_BILLING_PROVIDER": "stripe"},
        {"GATEWAY_BILLING_PROVIDER": "stripe", "GATEWAY_STRIPE_SECRET_KEY": "sk_live_x"},
        {"GATEWAY_BILLING_PROVIDER": "stripe", "GATEWAY_STRIPE_WEBHOOK_SECRET": "whsec_x"},
    ],
)
def test_stripe_without_both_secrets_refuses_to_start(env):
    r = _import_settings("gateway.settings.production", **PROD, **env)
    assert r.returncode != 0
    assert "GATEWAY_BILLING_PROVIDER=stripe needs GATEWAY_STRIPE_SECRET_KEY and GATEWAY_STRIPE_WEBHOOK_SECRET" in r.stderr


def test_an_unknown_provider_or_grace_out_of_range_stops_startup():
    r = _import_settings("gateway.settings.production", **PROD, GATEWAY_BILLING_PROVIDER="paypal")
    assert r.returncode != 0 and "GATEWAY_BILLING_PROVIDER must be one of , stripe, manual" in r.stderr
    r = _import_settings("gateway.settings.production", **PROD, GATEWAY_BILLING_GRACE_DAYS="365")
    assert r.returncode != 0 and "GATEWAY_BILLING_GRACE_DAYS must be between 0 and 90" in r.stderr


def test_the_defaults_take_no_payments_and_hold_no_secrets():
    from gateway.settings import billing

    r = _import_settings("gateway.settings.production", **PROD, GATEWAY_BILLING_PROVIDER="manual")
    assert r.returncode == 0, r.stderr
    assert billing.GATEWAY_BILLING_GRACE_DAYS == 7 and billing.GATEWAY_STRIPE_API_BASE == "https://api.stripe.com"
    assert billing.GATEWAY_STRIPE_SECRET_KEY == billing.GATEWAY_STRIPE_WEBHOOK_SECRET == ""


STRIPE = {"GATEWAY_BILLING_PROVIDER": "stripe", "GATEWAY_STRIPE_SECRET_KEY": "sk_x", "GATEWAY_STRIPE_WEBHOOK_SECRET": "whsec_x"}
FORM_ACTION = "' '.join(s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action'])"


def test_with_stripe_the_pages_forms_may_redirect_to_stripes_pages():
    """Chromium applies CSP form-action to the redirect after a form: without Stripe's origins, Subscribe did nothing."""
    r = _import_settings("gateway.settings.production", **PROD, **STRIPE, show=FORM_ACTION)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"]
    custom = "https://pay.example.com, https://billing.example.com/"
    r = _import_settings("gateway.settings.production", **PROD, **STRIPE, GATEWAY_STRIPE_PAGE_ORIGINS=custom, show=FORM_ACTION)
    assert r.stdout.split() == ["'self'", "https://pay.example.com", "https://billing.example.com"]
    r = _import_settings("gateway.settings.production", **PROD, GATEWAY_BILLING_PROVIDER="manual", show=FORM_ACTION)
    assert r.stdout.split() == ["'self'"]  # bank transfers go back to the billing page only


@pytest.mark.parametrize("origins", ["https://checkout.example.com/pay", "checkout.example.com", "ftp://x.example.com"])
def test_stripe_page_origins_are_origins(origins):
    r = _import_settings("gateway.settings.production", **PROD, **STRIPE, GATEWAY_STRIPE_PAGE_ORIGINS=origins)
    assert r.returncode != 0 and "GATEWAY_STRIPE_PAGE_ORIGINS lists origins like https://checkout.stripe.com" in r.stderr
