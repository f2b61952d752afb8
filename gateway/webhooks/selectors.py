"""Webhook reads, always scoped to one tenant first (house style rule 10)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Tenant
from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """The tenant's endpoints; the caller orders them."""
    return WebhookEndpoint.objects.filter(tenant=tenant)


def webhook_endpoint_get(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint | None:
    """The tenant's endpoint `endpoint_id`, or None (another tenant's is None too)."""
    return WebhookEndpoint.objects.filter(tenant=tenant, pk=endpoint_id).first()


def webhook_delivery_list(*, tenant: Tenant, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The deliveries to one of the tenant's endpoints; the caller orders and filters them."""
    return WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint)


def webhook_delivery_get(*, tenant: Tenant, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery | None:
    """One delivery to the tenant's `endpoint`, or None."""
    return WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint, pk=delivery_id).first()
