"""Webhook writes: endpoints, event emission (rows now, sends after commit) and signed delivery.

A delivery is a JSON POST with these headers:

- `X-Wharf-Event`: the event name; `X-Wharf-Delivery`: the event id (the same on every retry, so
  receivers de-duplicate on it);
- `X-Wharf-Timestamp`: unix seconds of this attempt;
- `X-Wharf-Signature: sha256=<hex>`: HMAC-SHA256 with the endpoint's secret over
  `"<timestamp>." + body`, so a receiver can check both origin and freshness (as Stripe does).

Any 2xx answer is success. Anything else (other status, timeout, refused connection) is retried
with exponential backoff by the task until `GATEWAY_WEBHOOK_MAX_ATTEMPTS`, then the delivery is
`failed`. URLs are checked by the one outbound address policy (gateway/core/netpolicy.py) when
registered and before every attempt — a tenant must not make us call our own network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.crypto import secret_decrypt, secret_encrypt
from gateway.core.errors import ValidationError
from gateway.core.netpolicy import outbound_url_check
from gateway.webhooks.conf import app_settings
from gateway.webhooks.errors import WebhookDeliveryError
from gateway.webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "Wharf-Webhooks/1"
MAX_ERROR = 500

__all__ = [
    "WebhookDeliveryError",
    "signature",
    "webhook_deliver",
    "webhook_deliveries_requeue",
    "webhook_endpoint_create",
    "webhook_event_emit",
]


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once; only the encrypted form is stored


def _clean_events(events: list[str]) -> list[str]:
    if isinstance(events, str) or not events:
        raise ValidationError(f"Give at least one event: {', '.join(EVENTS)} or *.")
    unknown = [e for e in events if e != "*" and e not in EVENTS]
    if unknown:
        raise ValidationError(f"Unknown webhook events {unknown!r}; known: {', '.join(EVENTS)} (or * for all).")
    return sorted(set(events))


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"A webhook URL must be an http(s) URL with a host, got {url[:200]!r}.")
    if len(url) > 500:
        raise ValidationError("A webhook URL may be at most 500 characters long.")
    return url


def webhook_endpoint_create(*, tenant: Tenant, url: str, events: list[str], description: str = "") -> CreatedEndpoint:
    """Register a tenant's endpoint with a new signing secret (returned once, stored encrypted)."""
    url = _clean_url(url)
    clean_events = _clean_events(events)
    _check_address(url)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url=url, events=clean_events, description=description[:200], secret_encrypted=secret_encrypt(secret)
    )
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_event_emit(*, tenant: Tenant, event: str, data: dict[str, Any]) -> int:
    """Queue `event` for every enabled endpoint of the tenant subscribed to it; sends after commit. Returns how many."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(tenant=tenant, enabled=True).order_by("pk")
        if event in e.events or "*" in e.events
    ]
    if not endpoints:
        return 0
    event_id = uuid.uuid4()
    body = {"id": str(event_id), "event": event, "created_at": timezone.now().isoformat(), "tenant": tenant.slug, "data": data}
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(tenant=tenant, endpoint=e, event=event, event_id=event_id, payload=body) for e in endpoints]
    )
    ids = [d.pk for d in deliveries]

    def send() -> None:
        from gateway.webhooks.tasks import webhook_deliver_task

        for pk in ids:
            webhook_deliver_task.delay(delivery_id=pk)

    # robust: a broker hiccup must not fail the caller; the sweep re-sends pending deliveries.
    transaction.on_commit(send, robust=True)
    return len(ids)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Wharf-Signature value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def _check_address(url: str) -> None:
    """Refuse webhook hosts that resolve to addresses of our own network (unless allowed)."""
    outbound_url_check(url, what="Webhook URL")


def _claim(delivery_id: int) -> WebhookDelivery | None:
    now = timezone.now()
    lease = timedelta(seconds=app_settings.timeout_seconds * 2 + 30)
    taken = (
        WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + lease, updated_at=now)
    )
    if not taken:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def _post(delivery: WebhookDelivery) -> int:
    """POST the delivery's payload, signed, to its endpoint once (no redirects); returns the HTTP status."""
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    ts = int(time.time())
    r = requests.post(
        endpoint.url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Wharf-Event": delivery.event,
            "X-Wharf-Delivery": str(delivery.event_id),
            "X-Wharf-Timestamp": str(ts),
            "X-Wharf-Signature": signature(secret_decrypt(endpoint.secret_encrypted), ts, body),
        },
        timeout=app_settings.timeout_seconds,
        allow_redirects=False,
    )
    return r.status_code


def webhook_deliver(*, delivery_id: int) -> str:
    """Send one delivery once: "delivered", "failed" (gave up), or raises WebhookDeliveryError to be retried.

    Idempotent: a delivered, failed, missing or currently-leased delivery returns at once
    ("done", "gone" or "busy") without sending.
    """
    delivery = _claim(delivery_id)
    if delivery is None:
        state = WebhookDelivery.objects.filter(pk=delivery_id).values_list("state", flat=True).first()
        return "gone" if state is None else ("busy" if state == WebhookDelivery.State.PENDING else "done")
    endpoint = delivery.endpoint
    attempts = delivery.attempts + 1
    status: int | None = None
    error = ""
    retryable = True
    if not endpoint.enabled:
        error, retryable = "endpoint disabled", False
    else:
        try:
            _check_address(endpoint.url)
            status = _post(delivery)
            if 200 <= status < 300:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    state=WebhookDelivery.State.DELIVERED,
                    attempts=attempts,
                    last_status_code=status,
                    last_error="",
                    delivered_at=timezone.now(),
                    lease_until=None,
                    updated_at=timezone.now(),
                )
                return "delivered"
            error = f"HTTP {status}"
        except ValidationError as exc:
            error, retryable = exc.message, False
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
    give_up = not retryable or attempts >= app_settings.max_attempts
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.FAILED if give_up else WebhookDelivery.State.PENDING,
        attempts=attempts,
        last_status_code=status,
        last_error=error[:MAX_ERROR],
        lease_until=None,
        updated_at=timezone.now(),
    )
    if give_up:
        log.warning("webhook delivery %s to %s failed for good after %d attempts: %s", delivery.pk, endpoint.url, attempts, error)
        return "failed"
    raise WebhookDeliveryError(f"delivery {delivery.pk} attempt {attempts}: {error}")


def webhook_deliveries_requeue(*, older_than: timedelta = timedelta(minutes=15), limit: int = 500) -> int:
    """Re-send pending deliveries untouched for a while (a lost message or a task out of retries)."""
    cutoff = timezone.now() - older_than
    ids = list(
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, updated_at__lt=cutoff)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now()))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    from gateway.webhooks.tasks import webhook_deliver_task

    for pk in ids:
        WebhookDelivery.objects.filter(pk=pk).update(updated_at=timezone.now())
        webhook_deliver_task.delay(delivery_id=pk)
    return len(ids)
