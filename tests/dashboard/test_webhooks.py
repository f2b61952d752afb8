"""Webhooks pages under /orgs/<slug>/webhooks/: the access matrix on every view and POST (nothing changed on denial),
create with the secret shown once and never rendered back, validation (bad URL, private address, events, secret),
race-safe edits, the test event through the real delivery path, the polled log, redelivery, delete, query counts."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from gateway.core.crypto import secret_decrypt
from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint
from gateway.webhooks.services import webhook_endpoint_create, webhook_event_emit
from gateway.webhooks.tasks import webhook_deliver_task
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.factories import make_tenant
from tests.replication import conftest as replication_fixtures

pytestmark = pytest.mark.django_db

hook_server = replication_fixtures.hook_server  # a real HTTP receiver on 127.0.0.1
BASE = "/orgs/acme/webhooks/"
SECRET = "a-shared-secret-of-enough-length"
ADMINS = allowed("admin")


def rows() -> dict[str, list]:
    """Every row a refused request must leave alone."""
    return {
        "endpoints": list(WebhookEndpoint.objects.order_by("pk").values()),
        "deliveries": list(WebhookDelivery.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values("pk", "action")),
    }


@pytest.fixture
def hook(tenant, hook_server) -> WebhookEndpoint:
    return webhook_endpoint_create(tenant=tenant, url=hook_server.url, events=["*"], secret=SECRET).endpoint


@pytest.fixture
def delivered(tenant, hook) -> WebhookDelivery:
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={"digest": "sha256:" + "a" * 64})
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert webhook_deliver_task(delivery_id=delivery.pk) == "delivered"
    return delivery


def _form(hook: WebhookEndpoint, **changes) -> dict:
    data = {"url": hook.url, "events": hook.events, "description": hook.description, "secret": ""}
    data["version"] = hook.updated_at.isoformat()
    if hook.enabled:
        data["enabled"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _ops(hook: WebhookEndpoint, delivery: WebhookDelivery) -> list[tuple[str, str, dict | None]]:
    one = f"{BASE}{hook.pk}/"
    return [
        ("get", BASE, None),
        ("get", f"{BASE}new/", None),
        ("post", f"{BASE}new/", {"url": "http://127.0.0.1:9/x", "events": ["*"]}),
        ("get", one, None),
        ("post", one, _form(hook, url="http://127.0.0.1:9/changed")),
        ("get", f"{one}delete/", None),
        ("post", f"{one}delete/", {}),
        ("post", f"{one}test/", {}),
        ("get", f"{one}deliveries/", None),
        ("post", f"{one}deliveries/{delivery.pk}/redeliver/", {}),
    ]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", range(10))
def test_access_matrix(as_caller, hook, delivered, caller, op):
    method, path, data = _ops(hook, delivered)[op]
    before = rows()
    client = as_caller(caller)
    response = client.get(path, HTTP_HX_REQUEST="true") if method == "get" else client.post(path, data)
    if caller in ADMINS:
        assert response.status_code in (200, 302), (caller, path, response.status_code)
        if method == "post":
            assert response.status_code == 302 and rows() != before, path
    else:
        assert_denied(response, caller)
        assert rows() == before


def test_another_organisations_webhook_is_404(as_caller, hook, delivered):
    globex = make_tenant("globex-2")
    theirs = webhook_endpoint_create(tenant=globex, url="http://127.0.0.1:9/theirs", events=["*"]).endpoint
    client = as_caller("owner")
    before = rows()
    for method, path, data in _ops(theirs, delivered)[3:]:
        response = client.get(path) if method == "get" else client.post(path, data or _form(theirs))
        assert response.status_code == 404, path
    assert rows() == before


def test_create_shows_the_generated_secret_once_and_never_again(as_caller, hook_server):
    client = as_caller("admin")
    response = client.post(
        f"{BASE}new/", {"url": hook_server.url, "events": ["integrity.problem"], "description": "ops", "enabled": "on"}
    )
    assert response.status_code == 302, response.content
    endpoint = WebhookEndpoint.objects.get()
    assert response["Location"] == f"{BASE}{endpoint.pk}/"
    secret = secret_decrypt(endpoint.secret_encrypted)
    assert secret.startswith("whsec_")
    first = client.get(response["Location"]).content.decode()
    assert secret in first and 'data-copy="#webhook-secret"' in first
    assert secret not in client.get(response["Location"]).content.decode()
    assert secret not in client.get(BASE).content.decode()
    assert (endpoint.events, endpoint.description, endpoint.enabled) == (["integrity.problem"], "ops", True)
    assert AuditEvent.objects.filter(action="webhook.create", target=str(endpoint.pk), actor="acme-admin").exists()


def test_a_given_secret_is_never_rendered_back(as_caller, hook):
    client = as_caller("owner")
    assert SECRET not in client.get(f"{BASE}{hook.pk}/").content.decode()
    new_secret = "another-secret-long-enough-1234"
    refused = client.post(f"{BASE}{hook.pk}/", _form(hook, url="ftp://nope", secret=new_secret))
    assert refused.status_code == 200 and new_secret not in refused.content.decode()
    refused = client.post(f"{BASE}new/", {"url": "ftp://nope", "events": ["*"], "secret": new_secret})
    assert refused.status_code == 200 and new_secret not in refused.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"events": ["*"]}, "url", "This field is required"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url", "http(s) URL"),
        ({"url": "not a url", "events": ["*"]}, "url", "http(s) URL"),
        ({"url": "http://127.0.0.1:9/x"}, "events", "This field is required"),
        ({"url": "http://127.0.0.1:9/x", "events": ["push"]}, "events", "not one of the available choices"),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "short"}, "secret", "at least 16 characters"),
        (
            {"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": " spaces-around-the-secret "},
            "secret",
            "surrounding spaces",
        ),
        ({"url": "http://127.0.0.1:9/x", "events": ["*"], "description": "d" * 201}, "description", "at most 200"),
    ],
)
def test_create_validation(as_caller, tenant, data, field, message):
    before = rows()
    response = as_caller("admin").post(f"{BASE}new/", data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert message in response.content.decode().replace("&#x27;", "'")
    assert rows() == before


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/"])
def test_private_addresses_are_a_form_error_when_the_policy_forbids_them(as_caller, hook, settings, url):
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    client = as_caller("admin")
    before = rows()
    for path, data in ((f"{BASE}new/", {"url": url, "events": ["*"]}), (f"{BASE}{hook.pk}/", _form(hook, url=url))):
        response = client.post(path, data)
        assert response.status_code == 200
        assert "non-public address" in " ".join(response.context["form"].errors["url"])
    assert rows() == before


def test_edit_changes_fields_and_a_blank_secret_keeps_the_old_one(as_caller, hook, hook_server):
    client = as_caller("admin")
    response = client.post(f"{BASE}{hook.pk}/", _form(hook, events=["replication.failed"], enabled=None, description="ci"))
    assert response.status_code == 302
    hook.refresh_from_db()
    assert (hook.events, hook.enabled, hook.description) == (["replication.failed"], False, "ci")
    assert secret_decrypt(hook.secret_encrypted) == SECRET
    new_secret = "a-brand-new-secret-for-signing"
    assert client.post(f"{BASE}{hook.pk}/", _form(hook, secret=new_secret)).status_code == 302
    hook.refresh_from_db()
    assert secret_decrypt(hook.secret_encrypted) == new_secret
    assert [e.detail["changed"] for e in AuditEvent.objects.filter(action="webhook.update").order_by("pk")] == [
        ["description", "enabled", "events"],
        ["secret"],
    ]


def test_an_edit_of_a_changed_webhook_is_refused_not_lost(as_caller, hook):
    stale = _form(hook, description="mine")
    client = as_caller("admin")
    assert client.post(f"{BASE}{hook.pk}/", _form(hook, description="theirs")).status_code == 302
    before = rows()
    response = client.post(f"{BASE}{hook.pk}/", stale, follow=True)
    assert "Someone changed this webhook" in response.content.decode()
    assert rows() == before
    hook.refresh_from_db()
    assert hook.description == "theirs"


def test_test_event_is_queued_then_the_log_shows_the_2xx_and_stops_polling(as_caller, hook, hook_server):
    client = as_caller("admin")
    response = client.post(f"{BASE}{hook.pk}/test/", follow=True)
    ping = WebhookDelivery.objects.get(endpoint=hook)
    assert (ping.event, ping.state, ping.attempts) == ("ping", "pending", 0)
    page = response.content.decode()
    assert "Test event queued" in page and 'hx-trigger="every 2s"' in page and f'data-delivery="{ping.pk}"' in page
    assert webhook_deliver_task(delivery_id=ping.pk) == "delivered"  # what the worker runs
    (received,) = hook_server.requests
    assert hook_server.signature_ok(received, SECRET) and received.headers["X-Wharf-Event"] == "ping"
    partial = client.get(f"{BASE}{hook.pk}/deliveries/", HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html
    assert 'data-state="delivered"' in html and ">200<" in html and "every 2s" not in html
    assert AuditEvent.objects.filter(action="webhook.test", target=str(hook.pk)).count() == 1


def test_a_disabled_webhook_cannot_be_tested(as_caller, hook):
    WebhookEndpoint.objects.filter(pk=hook.pk).update(enabled=False)
    before = rows()
    response = as_caller("admin").post(f"{BASE}{hook.pk}/test/", follow=True)
    assert "This endpoint is disabled" in response.content.decode()
    assert rows() == before


def test_redeliver_sends_again_and_refuses_while_pending(as_caller, hook, delivered, hook_server):
    client = as_caller("owner")
    response = client.post(f"{BASE}{hook.pk}/deliveries/{delivered.pk}/redeliver/", follow=True)
    assert "queued again" in response.content.decode()
    delivered.refresh_from_db()
    assert (delivered.state, delivered.attempts) == ("pending", 0)
    before = rows()
    refused = client.post(f"{BASE}{hook.pk}/deliveries/{delivered.pk}/redeliver/", follow=True)
    assert "still pending" in refused.content.decode() and rows() == before
    assert webhook_deliver_task(delivery_id=delivered.pk) == "delivered"
    assert len(hook_server.requests) == 2 and hook_server.requests[0].body == hook_server.requests[1].body


def test_delete_asks_then_removes_the_webhook_and_its_log(as_caller, hook, delivered):
    client = as_caller("admin")
    confirm = client.get(f"{BASE}{hook.pk}/delete/")
    assert confirm.status_code == 200 and hook.url in confirm.content.decode() and rows()["endpoints"]
    response = client.post(f"{BASE}{hook.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == BASE
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.delete", target=str(hook.pk)).exists()


def test_list_shows_the_last_delivery_with_constant_queries(as_caller, tenant, hook, delivered, django_assert_max_num_queries):
    client = as_caller("admin")
    client.get(BASE)  # the first page after signing in also records the session's activity (dashboard/middleware.py)
    with django_assert_max_num_queries(9):
        page = client.get(BASE).content.decode()
    assert hook.url in page and "delivered" in page and "HTTP 200" in page
    for i in range(15):
        extra = webhook_endpoint_create(tenant=tenant, url=f"http://127.0.0.1:9/{i}", events=["*"]).endpoint
        WebhookDelivery.objects.create(
            tenant=tenant, endpoint=extra, event="ping", payload={}, state="failed", last_status_code=500
        )
    with django_assert_max_num_queries(9):
        page = client.get(BASE).content.decode()
    assert page.count("HTTP 500") == 15 and page.count("/orgs/acme/webhooks/") >= 16


def test_delivery_log_paginates_with_constant_queries(as_caller, tenant, hook, delivered, django_assert_max_num_queries):
    client = as_caller("admin")
    client.get(f"{BASE}{hook.pk}/")  # the first page after signing in also records the session's activity
    with django_assert_max_num_queries(10):
        client.get(f"{BASE}{hook.pk}/")
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(tenant=tenant, endpoint=hook, event="ping", payload={}, state="failed", last_error=f"err {i}")
            for i in range(45)
        ]
    )
    with django_assert_max_num_queries(10):
        first = client.get(f"{BASE}{hook.pk}/").content.decode()
    assert first.count("data-delivery=") == 20 and "err 44" in first and "Page 1 of 3" in first
    last = client.get(f"{BASE}{hook.pk}/?page=3").content.decode()
    assert last.count("data-delivery=") == 6 and f'data-delivery="{delivered.pk}"' in last
    partial = client.get(f"{BASE}{hook.pk}/deliveries/?page=2", HTTP_HX_REQUEST="true").content.decode()
    assert partial.count("data-delivery=") == 20 and "Page 2 of 3" in partial and "<html" not in partial
    assert client.get(f"{BASE}{hook.pk}/deliveries/?page=2")["Location"] == f"{BASE}{hook.pk}/?page=2"  # without htmx: the page
