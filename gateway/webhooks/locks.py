"""Lock querysets of the webhooks app (house style rule 5: no-key locks, by pk)."""

from __future__ import annotations

from accounts.models import Tenant
from gateway.webhooks.models import WebhookEndpoint


def webhook_endpoint_lock(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint | None:
    """The tenant's endpoint `endpoint_id`, locked (API edits check If-Match under it), or None."""
    return WebhookEndpoint.objects.select_for_update(no_key=True).filter(tenant=tenant, pk=endpoint_id).order_by("pk").first()
