"""Typed access to the billing app's settings (house style rule 33); read at each access, so override_settings works."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class StorjPrices:
    """Storj's price table (settings.GATEWAY_STORJ_PRICES, gateway/settings/storj_prices.py): US dollars as exact Decimals."""

    model: str  # "2026" (Simplified pricing) or "legacy"
    storage_tb_month: Decimal  # per 10^12 bytes for a 720-hour month
    egress_tb: Decimal  # per 10^12 bytes downloaded
    segment_month: Decimal  # per segment for a 720-hour month (legacy); 0 = no segment fee
    min_object_bytes: int  # an object smaller than this is billed as this many bytes
    min_duration_days: int  # an object deleted younger than this is billed as if stored this long
    segment_bytes: int  # 64 MiB: an object is ceil(size / this) segments, at least one


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

    @property
    def storj_prices(self) -> StorjPrices:
        """Storj's prices and billing rules that `billing.storj_cost` applies."""
        raw = settings.GATEWAY_STORJ_PRICES
        return StorjPrices(
            model=str(raw["model"]),
            storage_tb_month=Decimal(str(raw["storage_tb_month"])),
            egress_tb=Decimal(str(raw["egress_tb"])),
            segment_month=Decimal(str(raw["segment_month"])),
            min_object_bytes=int(raw["min_object_bytes"]),
            min_duration_days=int(raw["min_duration_days"]),
            segment_bytes=int(raw["segment_bytes"]),
        )


app_settings = BillingSettings()
