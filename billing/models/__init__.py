"""Billing's models: one module per area, each imported here so that Django finds them.

`plans` (Plan, Subscription, SubscriptionPlanInterval), `usage` (UsageRecord, StorageDrift: the meter and its
reconciliation), `invoices` (Invoice, InvoiceLine, InvoiceSequence) and `payments` (ProviderEvent, ManualPayment).
"""

from billing.models.invoices import Invoice, InvoiceLine, InvoiceSequence
from billing.models.payments import ManualPayment, ProviderEvent
from billing.models.plans import Plan, Subscription, SubscriptionPlanInterval
from billing.models.usage import StorageDrift, UsageRecord

__all__ = [
    "Invoice",
    "InvoiceLine",
    "InvoiceSequence",
    "ManualPayment",
    "Plan",
    "ProviderEvent",
    "StorageDrift",
    "Subscription",
    "SubscriptionPlanInterval",
    "UsageRecord",
]
