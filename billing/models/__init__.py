"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription, SubscriptionPlanInterval), `invoices` (Invoice, InvoiceLine, InvoiceSequence) and `usage` (UsageRecord, StorageDrift: the meter and its reconciliation).
"""

from billing.models.invoices import Invoice, InvoiceLine, InvoiceSequence
from billing.models.plans import Plan, Subscription, SubscriptionPlanInterval
from billing.models.usage import StorageDrift, UsageRecord

__all__ = [
    "Invoice",
    "InvoiceLine",
    "InvoiceSequence",
    "Plan",
    "StorageDrift",
    "Subscription",
    "SubscriptionPlanInterval",
    "UsageRecord",
]
