"""Storj's price table (billing/storj_cost.py; docs/decisions/0048), from the environment, defaults = Storj's published prices.

Sources, read 2026-12-01 (storj/docs `app/(docs)/dcs/pricing/{simplified,legacy}/page.md`, docs.storj.io/dcs/pricing):
- "2026" (Simplified pricing, every project from 2026-07-01, Standard tier): storage $7/TB-month, egress
  $7/TB, objects under 50 kB billed as 50 kB, data deleted before 30 days billed for the 30 days, no
  segment fee. Decimal units (1 TB = 10^12 bytes), a month of 720 hours.
- "legacy" (projects created before 2025-11-01, until they migrate): storage $4/TB-month, egress $7/TB,
  $0.0000088 per segment-month (a segment is 64 MiB; every object at least one), no minimum object size
  or duration.

GATEWAY_STORJ_PRICING picks the model; every other variable overrides one figure of that model:
GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH, GATEWAY_STORJ_PRICE_EGRESS_TB, GATEWAY_STORJ_PRICE_SEGMENT_MONTH
(US dollars, decimal numbers such as 7 or 0.0000088), GATEWAY_STORJ_MIN_OBJECT_BYTES,
GATEWAY_STORJ_MIN_DURATION_DAYS (whole numbers). A value that is no number, negative or absurd
refuses to start (ImproperlyConfigured).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway.settings import env as E

MODELS: dict[str, dict[str, Any]] = {
    "2026": {
        "storage_tb_month": "7",
        "egress_tb": "7",
        "segment_month": "0",
        "min_object_bytes": 50_000,
        "min_duration_days": 30,
    },
    "legacy": {
        "storage_tb_month": "4",
        "egress_tb": "7",
        "segment_month": "0.0000088",
        "min_object_bytes": 0,
        "min_duration_days": 0,
    },
}
SEGMENT_BYTES = 64 * 1024 * 1024  # Storj's default segment size (64 MiB); multipart parts of that size are one each
MAX_PRICE = Decimal(1_000_000)  # dollars per unit: anything above is a typo (a price in cents, or bytes)


def _price(name: str, default: str) -> str:
    value = (E.raw(name) or "").strip() or default
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a price in US dollars such as 7 or 0.0000088, got {value!r}.") from None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ImproperlyConfigured(f"{name} must be a price from 0 to {MAX_PRICE} US dollars, got {value!r}.")
    return str(price)  # kept as text: settings stay plain data, billing.conf turns it back into a Decimal


def prices_from_env() -> dict[str, Any]:
    """GATEWAY_STORJ_PRICES: the chosen model's figures with the environment's overrides, validated."""
    model = E.choice("GATEWAY_STORJ_PRICING", "2026", tuple(MODELS))
    defaults = MODELS[model]
    return {
        "model": model,
        "storage_tb_month": _price("GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH", defaults["storage_tb_month"]),
        "egress_tb": _price("GATEWAY_STORJ_PRICE_EGRESS_TB", defaults["egress_tb"]),
        "segment_month": _price("GATEWAY_STORJ_PRICE_SEGMENT_MONTH", defaults["segment_month"]),
        "min_object_bytes": E.integer(
            "GATEWAY_STORJ_MIN_OBJECT_BYTES", defaults["min_object_bytes"], minimum=0, maximum=SEGMENT_BYTES
        ),
        "min_duration_days": E.integer("GATEWAY_STORJ_MIN_DURATION_DAYS", defaults["min_duration_days"], minimum=0, maximum=365),
        "segment_bytes": SEGMENT_BYTES,
    }
