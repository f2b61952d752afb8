"""Typed access to the billing app's settings (house style rule 33); read at each access, so override_settings works."""

from __future__ import annotations

from django.conf import settings


class BillingSettings:
    @property
    def default_plan(self) -> str:
        """The plan code every new tenant is subscribed to; "" = none (self-hosted: no subscription, unlimited)."""
        return str(getattr(settings, "GATEWAY_BILLING_DEFAULT_PLAN", "") or "").strip()

    @property
    def invoice_issuer(self) -> str:
        """Who issues the invoices: the prefix of their numbers and the sequence they are numbered in ("WHARF")."""
        return str(getattr(settings, "GATEWAY_BILLING_INVOICE_ISSUER", "") or "WHARF").strip().upper()


app_settings = BillingSettings()
