"""Webhook tasks: deliver one (retried with backoff), re-send stragglers. Thin: they call services."""

from __future__ import annotations

from django.db import DatabaseError

from gateway.core.tasking import task
from gateway.webhooks.errors import WebhookDeliveryError

# The row's attempt cap (GATEWAY_WEBHOOK_MAX_ATTEMPTS, at most 50) decides when to stop; this
# only has to be larger so Celery never gives up first.
_TASK_MAX_RETRIES = 60


@task(name="gateway.webhooks.deliver", retry_on=(WebhookDeliveryError, DatabaseError), max_retries=_TASK_MAX_RETRIES)
def webhook_deliver_task(*, delivery_id: int) -> str:
    """POST one signed delivery; idempotent (a delivered/failed/leased delivery is not sent again)."""
    from gateway.webhooks.services import webhook_deliver

    return webhook_deliver(delivery_id=delivery_id)


@task(name="gateway.webhooks.sweep", retry_on=(DatabaseError,))
def webhook_sweep_task() -> int:
    """Re-send pending deliveries whose message was lost; bounded per run."""
    from gateway.webhooks.services import webhook_deliveries_requeue

    return webhook_deliveries_requeue()
