"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription) and `usage` (the metered usage records) are added by the billing work.
"""

from billing.models.usage import StorageDrift, UsageRecord

__all__ = ["StorageDrift", "UsageRecord"]
