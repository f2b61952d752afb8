"""Webhook endpoints of a tenant and one delivery row per (event, endpoint)."""

from __future__ import annotations

import uuid

from django.db import models

from gateway.core.models import TenantOwnedModel

# Events a tenant can subscribe to; "*" subscribes to all of them.
EVENTS: dict[str, str] = {
    "integrity.problem": "an audited blob or manifest object was missing, the wrong size or corrupt (with the repair outcome)",
    "replication.failed": "an object could not be copied to the tenant's replica target after every attempt",
}


class WebhookEndpoint(TenantOwnedModel):
    url = models.URLField(max_length=500)
    # The HMAC-SHA256 signing secret, Fernet-encrypted (gateway.core.crypto); shown once at creation.
    secret_encrypted = models.TextField()
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True, default="")
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class WebhookDelivery(TenantOwnedModel):
    """One event for one endpoint. Sent at least once; receivers de-duplicate on `event_id`."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Held while one worker sends it, so a duplicate message does not send it twice at once.
    lease_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhookdelivery_unique_endpoint_event")]
        indexes = [models.Index(fields=["state", "updated_at"], name="webhookdelivery_state_idx")]
