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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.models import Tenant
from gateway.core.crypto import secret_decrypt, secret_encrypt
from gateway.core.errors import Conflict, ValidationError
from gateway.core.netpolicy import outbound_url_check
from gateway.webhooks.conf import app_settings
from gateway.webhooks.errors import WebhookDeliveryError
from gateway.webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
MIN_SECRET, MAX_SECRET = 16, 256
# The test event (POST …/webhooks/{id}/test); not subscribable, so not in EVENTS.
PING = "ping"
REDELIVERABLE = (WebhookDelivery.State.DELIVERED, WebhookDelivery.State.FAILED)
USER_AGENT = "Wharf-Webhooks/1"
MAX_ERROR = 500

__all__ = [
    "WebhookDeliveryError",
    "signature",
    "webhook_deliver",
    "webhook_deliveries_requeue",
    "webhook_delivery_redeliver",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_ping",
    "webhook_endpoint_update",
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


def _clean_secret(secret: str | None) -> str:
    if secret is None:
        return SECRET_PREFIX + secrets.token_urlsafe(32)
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or not secret.isprintable() or secret != secret.strip():
        message = f"A signing secret is {MIN_SECRET} to {MAX_SECRET} printable characters without surrounding spaces."
        raise ValidationError(message, extra={"errors": {"secret": message}})
    return secret


@contextmanager
def _about(field: str) -> Iterator[None]:
    """Re-raise a ValidationError naming the field it is about, for the API's `errors` list."""
    try:
        yield
    except ValidationError as exc:
        raise ValidationError(exc.message, extra={"errors": {field: exc.message}}) from None


def _checked(*, url: str | None = None, events: list[str] | None = None) -> dict[str, Any]:
    """Cleaned url and events (each only if given), the URL through the outbound address policy."""
    out: dict[str, Any] = {}
    if url is not None:
        with _about("url"):
            out["url"] = _clean_url(url)
    if events is not None:
        with _about("events"):
            out["events"] = _clean_events(events)
    if url is not None:
        with _about("url"):
            _check_address(out["url"])  # last: it resolves the host, the slow part
    return out


def webhook_endpoint_create(
    *,
    tenant: Tenant,
    url: str,
    events: list[str],
    description: str = "",
    secret: str | None = None,
    enabled: bool = True,
    actor: str = SYSTEM_ACTOR,
) -> CreatedEndpoint:
    """Register a tenant's endpoint with `secret` or a new signing secret (returned once, stored encrypted); audited."""
    clean = _checked(url=url, events=events)
    secret = _clean_secret(secret)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            url=clean["url"],
            events=clean["events"],
            description=description[:200],
            enabled=enabled,
            secret_encrypted=secret_encrypt(secret),
        )
        audit_record(action="webhook.create", actor=actor, tenant=tenant, target=str(endpoint.pk), detail={"url": endpoint.url})
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: str,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    secret: str | None = None,
) -> WebhookEndpoint:
    """Change the fields given (a new URL passes the address policy; a new secret is stored encrypted); audited."""
    clean = _checked(url=url, events=events)
    if description is not None:
        clean["description"] = description[:200]
    if enabled is not None:
        clean["enabled"] = enabled
    if secret is not None:
        clean["secret_encrypted"] = secret_encrypt(_clean_secret(secret))
    for field, value in clean.items():
        setattr(endpoint, field, value)
    with transaction.atomic():
        endpoint.save(update_fields=[*clean, "updated_at"])
        changed = sorted("secret" if f == "secret_encrypted" else f for f in clean)
        audit_record(
            action="webhook.update", actor=actor, tenant=endpoint.tenant, target=str(endpoint.pk), detail={"changed": changed}
        )
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    """Remove an endpoint and its deliveries (a queued send then finds nothing: "gone"); audited."""
    with transaction.atomic():
        audit_record(
            action="webhook.delete", actor=actor, tenant=endpoint.tenant, target=str(endpoint.pk), detail={"url": endpoint.url}
        )
        endpoint.delete()


def _body(*, tenant: Tenant, event: str, event_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(event_id), "event": event, "created_at": timezone.now().isoformat(), "tenant": tenant.slug, "data": data}


def _send_after_commit(ids: list[int]) -> None:
    def send() -> None:
        from gateway.webhooks.tasks import webhook_deliver_task

        for pk in ids:
            webhook_deliver_task.delay(delivery_id=pk)

    # robust: a broker hiccup must not fail the caller; the sweep re-sends pending deliveries.
    transaction.on_commit(send, robust=True)


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
    body = _body(tenant=tenant, event=event, event_id=event_id, data=data)
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(tenant=tenant, endpoint=e, event=event, event_id=event_id, payload=body) for e in endpoints]
    )
    _send_after_commit([d.pk for d in deliveries])
    return len(deliveries)


def webhook_endpoint_ping(*, endpoint: WebhookEndpoint, actor: str) -> WebhookDelivery:
    """Queue a `ping` event to this endpoint only, whatever it subscribes to; sent after commit like any event. Audited.

    `ping` is not in EVENTS: nobody subscribes to it, it exists to test an endpoint (GitHub's ping).
    """
    if not endpoint.enabled:
        raise Conflict("This endpoint is disabled; enable it before testing it.")
    event_id = uuid.uuid4()
    data = {"endpoint": endpoint.pk, "message": "A test event sent from the admin API."}
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            tenant=endpoint.tenant,
            endpoint=endpoint,
            event=PING,
            event_id=event_id,
            payload=_body(tenant=endpoint.tenant, event=PING, event_id=event_id, data=data),
        )
        audit_record(action="webhook.test", actor=actor, tenant=endpoint.tenant, target=str(endpoint.pk))
        _send_after_commit([delivery.pk])
    return delivery


def webhook_delivery_redeliver(*, delivery: WebhookDelivery, actor: str) -> WebhookDelivery:
    """Send a delivered or failed delivery again, same event id and body, with a fresh attempt budget; audited.

    A pending one is already on its way (409). One conditional UPDATE, so two redeliveries at once queue it once.
    """
    with transaction.atomic():
        reset = WebhookDelivery.objects.filter(pk=delivery.pk, state__in=REDELIVERABLE).update(
            state=WebhookDelivery.State.PENDING, attempts=0, last_error="", lease_until=None, updated_at=timezone.now()
        )
        if not reset:
            raise Conflict("This delivery is still pending: it is being sent or retried already.")
        audit_record(action="webhook.redeliver", actor=actor, tenant=delivery.tenant, target=str(delivery.pk))
        _send_after_commit([delivery.pk])
    delivery.refresh_from_db()
    return delivery


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
