"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription) is here; `usage` (the metered usage records) is added by the metering work.
"""

from billing.models.plans import Plan, Subscription

__all__ = ["Plan", "Subscription"]
