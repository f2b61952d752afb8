"""Typed access to the billing app's settings (house style rule 33); read at each access, so override_settings works."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class BillingSettings:
    @property
    def default_plan(self) -> str:
        """The plan code every new tenant is subscribed to; "" = none (self-hosted: no subscription, unlimited)."""
        return str(getattr(settings, "GATEWAY_BILLING_DEFAULT_PLAN", "") or "").strip()

    @property
    def provider(self) -> str:
        """The payment provider: "stripe", "manual" or "" (none)."""
        return str(getattr(settings, "GATEWAY_BILLING_PROVIDER", "") or "").strip()

    @property
    def grace(self) -> timedelta:
        """How long a subscription stays past_due before the tenant is suspended as unpaid."""
        return timedelta(days=int(getattr(settings, "GATEWAY_BILLING_GRACE_DAYS", 7)))

    @property
    def stripe_secret_key(self) -> str:
        return str(getattr(settings, "GATEWAY_STRIPE_SECRET_KEY", "") or "")

    @property
    def stripe_webhook_secret(self) -> str:
        return str(getattr(settings, "GATEWAY_STRIPE_WEBHOOK_SECRET", "") or "")

    @property
    def stripe_api_base(self) -> str:
        return str(getattr(settings, "GATEWAY_STRIPE_API_BASE", "https://api.stripe.com"))

    @property
    def stripe_webhook_tolerance(self) -> int:
        return int(getattr(settings, "GATEWAY_STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300))

    @property
    def invoice_issuer(self) -> str:
        """Who issues the invoices: the prefix of their numbers and the sequence they are numbered in ("WHARF")."""
        issuer = str(getattr(settings, "GATEWAY_BILLING_INVOICE_ISSUER", "") or "WHARF").strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{1,32}", issuer):
            raise ImproperlyConfigured(f"GATEWAY_BILLING_INVOICE_ISSUER must be 1-32 letters or digits, not {issuer!r}.")
        return issuer


app_settings = BillingSettings()
