"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription), `usage` (UsageRecord, StorageDrift: the meter and its reconciliation) and
`payments` (ProviderEvent, ManualPayment).
"""

from billing.models.payments import ManualPayment, ProviderEvent
from billing.models.plans import Plan, Subscription
from billing.models.usage import StorageDrift, UsageRecord

__all__ = ["ManualPayment", "Plan", "ProviderEvent", "StorageDrift", "Subscription", "UsageRecord"]
