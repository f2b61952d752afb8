"""Webhook reads, always scoped to one tenant first (house style rule 10)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import Tenant
from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """The tenant's endpoints; the caller orders them."""
    return WebhookEndpoint.objects.filter(tenant=tenant)


def webhook_endpoint_list_with_last_delivery(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """The tenant's endpoints with their newest delivery's `last_state`, `last_code` and `last_at` annotated (one query)."""
    newest = WebhookDelivery.objects.filter(tenant=tenant, endpoint=OuterRef("pk")).order_by("-pk")
    return webhook_endpoint_list(tenant=tenant).annotate(
        last_state=Subquery(newest.values("state")[:1]),
        last_code=Subquery(newest.values("last_status_code")[:1]),
        last_at=Subquery(newest.values("updated_at")[:1]),
    )


def webhook_endpoint_get(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint | None:
    """The tenant's endpoint `endpoint_id`, or None (another tenant's is None too)."""
    return WebhookEndpoint.objects.filter(tenant=tenant, pk=endpoint_id).first()


def webhook_delivery_list(*, tenant: Tenant, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The deliveries to one of the tenant's endpoints; the caller orders and filters them."""
    return WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint)


def webhook_delivery_get(*, tenant: Tenant, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery | None:
    """One delivery to the tenant's `endpoint`, or None."""
    return WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint, pk=delivery_id).first()
