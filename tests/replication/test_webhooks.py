"""Webhooks: signed deliveries to a real local HTTP server, retries with backoff, giving up, SSRF refusal, secrets at rest."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Tenant
from gateway.core.errors import ValidationError
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.services import (
    WebhookDeliveryError,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_event_emit,
)
from gateway.webhooks.tasks import webhook_deliver_task

pytestmark = pytest.mark.django_db


def test_an_event_is_delivered_signed_to_subscribed_endpoints_only(tenant, hook_server, django_capture_on_commit_callbacks):
    subscribed = webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["integrity.problem"])
    webhook_endpoint_create(tenant=tenant, url=hook_server.url + "/other", events=["replication.failed"])
    everything = webhook_endpoint_create(tenant=tenant, url=hook_server.url + "/all", events=["*"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        n = webhook_event_emit(
            tenant=tenant, event="integrity.problem", data={"digest": "sha256:" + "a" * 64, "status": "missing"}
        )
    assert n == 2 and len(callbacks) == 1  # one after-commit callback sends them all
    deliveries = list(WebhookDelivery.objects.filter(tenant=tenant).order_by("pk"))
    assert [d.endpoint_id for d in deliveries] == [subscribed.endpoint.pk, everything.endpoint.pk]
    assert deliveries[0].event_id == deliveries[1].event_id
    for d in deliveries:
        assert webhook_deliver_task(delivery_id=d.pk) == "delivered"
    first, second = hook_server.requests
    assert hook_server.signature_ok(first, subscribed.secret) and hook_server.signature_ok(second, everything.secret)
    assert not hook_server.signature_ok(first, everything.secret)
    assert first.headers["Content-Type"] == "application/json" and first.headers["X-Wharf-Event"] == "integrity.problem"
    assert first.headers["X-Wharf-Delivery"] == str(deliveries[0].event_id)
    assert first.json["data"] == {"digest": "sha256:" + "a" * 64, "status": "missing"} and first.json["tenant"] == "acme"
    d = WebhookDelivery.objects.get(pk=deliveries[0].pk)
    assert (d.state, d.attempts, d.last_status_code) == ("delivered", 1, 200) and d.delivered_at
    # Idempotent: a delivered event is not sent again by a duplicate message.
    assert webhook_deliver(delivery_id=d.pk) == "done"
    assert len(hook_server.requests) == 2


def test_failures_are_retried_with_the_same_delivery_id_then_succeed(tenant, hook_server):
    webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["*"])
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={})
    d = WebhookDelivery.objects.get(tenant=tenant)
    hook_server.responses = [500, 503]
    with pytest.raises(WebhookDeliveryError, match="HTTP 500"):
        webhook_deliver(delivery_id=d.pk)
    with pytest.raises(WebhookDeliveryError, match="HTTP 503"):
        webhook_deliver(delivery_id=d.pk)
    d.refresh_from_db()
    assert (d.state, d.attempts, d.last_status_code, d.last_error) == ("pending", 2, 503, "HTTP 503")
    assert webhook_deliver(delivery_id=d.pk) == "delivered"
    assert len({r.headers["X-Wharf-Delivery"] for r in hook_server.requests}) == 1
    assert [r.status for r in hook_server.requests] == [500, 503, 200]


def test_the_task_retries_through_the_project_decorator(tenant, hook_server):
    """Celery's own retry path (`apply` runs retries eagerly, without the countdown)."""
    assert webhook_deliver_task.acks_late and webhook_deliver_task.name == "gateway.webhooks.deliver"
    webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["*"])
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={})
    d = WebhookDelivery.objects.get(tenant=tenant)
    hook_server.responses = [502, 500]
    result = webhook_deliver_task.apply(kwargs={"delivery_id": d.pk})
    assert result.get() == "delivered"
    assert [r.status for r in hook_server.requests] == [502, 500, 200]
    d.refresh_from_db()
    assert d.state == "delivered" and d.attempts == 3


def test_delivery_gives_up_after_the_attempt_limit(tenant, hook_server, settings):
    settings.GATEWAY_WEBHOOK_MAX_ATTEMPTS = 2
    webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["*"])
    webhook_event_emit(tenant=tenant, event="replication.failed", data={})
    d = WebhookDelivery.objects.get(tenant=tenant)
    hook_server.responses = [500, 500, 500]
    with pytest.raises(WebhookDeliveryError):
        webhook_deliver(delivery_id=d.pk)
    assert webhook_deliver(delivery_id=d.pk) == "failed"
    assert webhook_deliver(delivery_id=d.pk) == "done"
    d.refresh_from_db()
    assert d.state == "failed" and d.attempts == 2 and len(hook_server.requests) == 2


def test_an_unreachable_endpoint_is_a_retryable_failure(tenant):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    webhook_endpoint_create(tenant=tenant, url=f"http://127.0.0.1:{port}/nobody", events=["*"])
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={})
    d = WebhookDelivery.objects.get(tenant=tenant)
    with pytest.raises(WebhookDeliveryError, match="ConnectionError"):
        webhook_deliver(delivery_id=d.pk)
    d.refresh_from_db()
    assert d.state == "pending" and d.attempts == 1 and d.lease_until is None


def test_private_addresses_are_refused_unless_allowed(tenant, settings):
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    for url in (
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://[2002:7f00:1::]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://2130706433/x",
    ):
        with pytest.raises(ValidationError, match="non-public address"):
            webhook_endpoint_create(tenant=tenant, url=url, events=["*"])


def test_an_endpoint_made_private_later_is_not_called(tenant, hook_server, settings):
    webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["*"])
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={})
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    d = WebhookDelivery.objects.get(tenant=tenant)
    assert webhook_deliver(delivery_id=d.pk) == "failed"
    d.refresh_from_db()
    assert "non-public" in d.last_error and hook_server.requests == []


def test_bad_input_is_refused(tenant):
    with pytest.raises(ValidationError, match="http\\(s\\) URL"):
        webhook_endpoint_create(tenant=tenant, url="ftp://example.com/x", events=["*"])
    with pytest.raises(ValidationError, match="Unknown webhook events"):
        webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1/x", events=["push"])
    with pytest.raises(ValidationError, match="at least one event"):
        webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1/x", events=[])
    with pytest.raises(ValueError, match="unknown webhook event"):
        webhook_event_emit(tenant=tenant, event="nope", data={})
    assert webhook_event_emit(tenant=tenant, event="integrity.problem", data={}) == 0  # no endpoints: nothing queued
    assert webhook_deliver(delivery_id=10**12) == "gone"


def test_signing_secrets_are_encrypted_at_rest(tenant):
    created = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1/x", events=["*"])
    assert created.secret.startswith("whsec_")
    with connection.cursor() as c:
        c.execute("SELECT * FROM webhooks_webhookendpoint WHERE id = %s", [created.endpoint.pk])
        row = c.fetchone()
    assert not any(created.secret in str(col) or created.secret[6:] in str(col) for col in row)


def test_other_tenants_endpoints_never_receive_an_event(tenant, hook_server):
    from tests.factories import make_tenant

    other = make_tenant("other")
    webhook_endpoint_create(tenant=other, url=hook_server.url, events=["*"])
    assert webhook_event_emit(tenant=tenant, event="integrity.problem", data={}) == 0
    assert not WebhookDelivery.objects.filter(tenant=Tenant.objects.get(slug="acme")).exists()
