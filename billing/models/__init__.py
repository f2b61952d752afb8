"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription) and `usage` (UsageRecord, StorageDrift: the meter and its reconciliation).
"""

from billing.models.plans import Plan, Subscription
from billing.models.usage import StorageDrift, UsageRecord

__all__ = ["Plan", "StorageDrift", "Subscription", "UsageRecord"]
