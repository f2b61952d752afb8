"""Webhooks under /api/v1/tenants/{slug}/webhooks: CRUD with ETag/If-Match, a ping through the real delivery path to a
real HTTP receiver (signature checked with the secret), deliveries with filters and pages, redelivery, the access matrix."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership
from accounts.services import robot_create
from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint
from gateway.webhooks.services import webhook_endpoint_create, webhook_event_emit
from gateway.webhooks.tasks import webhook_deliver_task
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member
from tests.replication import conftest as replication_fixtures

BASE = "/api/v1/tenants/acme/webhooks"
SECRET = "a-shared-secret-of-enough-length"
hook_server = replication_fixtures.hook_server  # the fixture: a real HTTP receiver on 127.0.0.1


def rows() -> dict[str, list]:
    """snapshot() plus every webhook row a denied request must leave alone."""
    return {
        **snapshot(),
        "endpoints": list(WebhookEndpoint.objects.order_by("pk").values()),
        "deliveries": list(WebhookDelivery.objects.order_by("pk").values()),
    }


@pytest.fixture
def hook(acme, hook_server):
    """acme's endpoint to the local receiver, subscribed to everything, with a known secret."""
    return webhook_endpoint_create(tenant=acme, url=hook_server.url, events=["*"], secret=SECRET).endpoint


@pytest.fixture
def delivered(acme, hook) -> WebhookDelivery:
    webhook_event_emit(tenant=acme, event="integrity.problem", data={"digest": "sha256:" + "a" * 64})
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert webhook_deliver_task(delivery_id=delivery.pk) == "delivered"
    return delivery


def _etag(api: Api, path: str) -> str:
    response = api.get(path)
    assert response.status_code == 200, response.content
    return response["ETag"]


def _as(acme, role: str) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), ["api:read", "api:write"]))


def _ops(hook_id: int, delivery_id: int) -> list[tuple[str, str, dict | None]]:
    one = f"{BASE}/{hook_id}"
    return [
        ("get", BASE, None),
        ("post", BASE, {"url": "http://127.0.0.1:9/x", "events": ["*"]}),
        ("get", one, None),
        ("patch", one, {"enabled": False}),
        ("delete", one, None),
        ("post", f"{one}/test", None),
        ("get", f"{one}/deliveries", None),
        ("post", f"{one}/deliveries/{delivery_id}/redeliver", None),
    ]


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path, HTTP_IF_MATCH="*")
    if method == "patch":
        return api.patch(path, body, HTTP_IF_MATCH="*")
    return api.post(path, body)


@pytest.mark.django_db
def test_create_returns_the_secret_once_and_get_never(api_write, acme, hook_server):
    response = api_write.post(BASE, {"url": hook_server.url, "events": ["integrity.problem"], "description": "ops"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["integrity.problem"] and body["enabled"] is True
    one = f"{BASE}/{body['id']}"
    got = api_write.get(one)
    assert "secret" not in got.json() and got["ETag"] == response["ETag"]
    assert "secret" not in api_write.get(BASE).json()["results"][0]
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in stored.secret_encrypted
    assert AuditEvent.objects.filter(action="webhook.create", target=str(stored.pk), actor="olivia").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["*"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["push"]}, "events.0"),
        ({"url": "http://127.0.0.1/x", "events": ["*"], "secret": "short"}, "secret"),
        ({"url": "http://127.0.0.1/x", "events": ["*"], "description": "d" * 201}, "description"),
    ],
)
def test_create_validation(api_write, acme, body, field):
    before = rows()
    problem = assert_problem(api_write.post(BASE, body), 400)
    assert field in [e["field"] for e in problem["errors"]]
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/"])
def test_private_addresses_are_refused_at_create_and_update(api_write, acme, hook, settings, url):
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    before = rows()
    problem = assert_problem(api_write.post(BASE, {"url": url, "events": ["*"]}), 400)
    assert [e["field"] for e in problem["errors"]] == ["url"] and "non-public" in problem["detail"]
    problem = assert_problem(api_write.patch(f"{BASE}/{hook.pk}", {"url": url}, HTTP_IF_MATCH="*"), 400)
    assert [e["field"] for e in problem["errors"]] == ["url"]
    assert rows() == before


@pytest.mark.django_db
def test_ping_goes_through_the_real_delivery_path_signed_with_the_given_secret(
    api_write,
    acme,
    hook_server,
    django_capture_on_commit_callbacks,
):
    created = api_write.post(BASE, {"url": hook_server.url, "events": ["replication.failed"], "secret": SECRET}).json()
    assert created["secret"] == SECRET
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_write.post(f"{BASE}/{created['id']}/test")
    assert response.status_code == 202, response.content
    ping = response.json()
    assert (ping["event"], ping["state"], ping["attempts"], ping["response_code"]) == ("ping", "pending", 0, None)
    assert len(callbacks) == 1  # sent after commit, by the delivery task
    assert webhook_deliver_task(delivery_id=ping["id"]) == "delivered"  # what the worker runs
    (received,) = hook_server.requests
    assert hook_server.signature_ok(received, SECRET) and not hook_server.signature_ok(received, SECRET + "x")
    assert received.headers["X-Wharf-Event"] == "ping" and received.headers["X-Wharf-Delivery"] == ping["event_id"]
    assert received.json["data"]["endpoint"] == created["id"] and received.json["tenant"] == "acme"
    (listed,) = api_write.get(f"{BASE}/{created['id']}/deliveries").json()["results"]
    assert (listed["state"], listed["response_code"], listed["attempts"], listed["error"]) == ("delivered", 200, 1, "")
    assert listed["delivered_at"] and AuditEvent.objects.filter(action="webhook.test").count() == 1


@pytest.mark.django_db
def test_ping_of_a_disabled_endpoint_is_409(api_write, acme, hook):
    WebhookEndpoint.objects.filter(pk=hook.pk).update(enabled=False)
    before = rows()
    assert_problem(api_write.post(f"{BASE}/{hook.pk}/test"), 409)
    assert rows() == before


@pytest.mark.django_db
def test_update_needs_if_match_and_changes_only_what_is_sent(api_write, acme, hook, hook_server):
    one = f"{BASE}/{hook.pk}"
    etag = _etag(api_write, one)
    before = rows()
    assert_problem(api_write.patch(one, {"enabled": False}), 428)
    assert_problem(api_write.patch(one, {"enabled": False}, HTTP_IF_MATCH='"stale"'), 412)
    assert_problem(api_write.patch(one, {"events": ["nope"]}, HTTP_IF_MATCH=etag), 400)
    assert rows() == before
    response = api_write.patch(one, {"enabled": False, "description": "paused"}, HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False and response.json()["events"] == ["*"] and response["ETag"] != etag
    assert _etag(api_write, one) == response["ETag"]
    assert_problem(api_write.patch(one, {"enabled": True}, HTTP_IF_MATCH=etag), 412)  # the old tag is stale now
    # Replacing only the secret leaves the representation (and ETag) alone, and the next send uses the new one.
    new_etag = response["ETag"]
    response = api_write.patch(one, {"secret": "x" * 20, "enabled": True}, HTTP_IF_MATCH=new_etag)
    assert response.status_code == 200 and "secret" not in response.json()
    assert AuditEvent.objects.filter(action="webhook.update").count() == 2
    ping = api_write.post(f"{one}/test").json()
    webhook_deliver_task(delivery_id=ping["id"])
    assert hook_server.signature_ok(hook_server.requests[-1], "x" * 20)
    assert not hook_server.signature_ok(hook_server.requests[-1], SECRET)


@pytest.mark.django_db
def test_delete_needs_if_match_and_removes_the_deliveries(api_write, acme, hook, delivered):
    one = f"{BASE}/{hook.pk}"
    before = rows()
    assert_problem(api_write.delete(one), 428)
    assert_problem(api_write.delete(one, HTTP_IF_MATCH='"stale"'), 412)
    assert rows() == before
    assert api_write.delete(one, HTTP_IF_MATCH=_etag(api_write, one)).status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=hook.pk).exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.delete", target=str(hook.pk)).exists()
    assert_problem(api_write.get(one), 404)


@pytest.mark.django_db
def test_deliveries_filter_by_state_and_paginate(api_read, acme, hook, hook_server):
    for i in range(5):
        webhook_event_emit(tenant=acme, event="integrity.problem", data={"i": i})
    ids = list(WebhookDelivery.objects.filter(endpoint=hook).order_by("pk").values_list("pk", flat=True))
    for pk in ids[:2]:
        webhook_deliver_task(delivery_id=pk)
    path = f"{BASE}/{hook.pk}/deliveries"
    assert [d["id"] for d in api_read.get(path, state="delivered").json()["results"]] == ids[1::-1]
    assert [d["id"] for d in api_read.get(path, state="pending").json()["results"]] == ids[:1:-1]
    assert api_read.get(path, event="replication.failed").json()["results"] == []
    seen, url = [], f"{path}?limit=2"
    while url:
        page = api_read.client.get(url, **api_read.headers).json()
        seen += [d["id"] for d in page["results"]]
        url = page["next"]
    assert seen == ids[::-1]
    problem = assert_problem(api_read.get(path, state="lost"), 400)
    assert [e["field"] for e in problem["errors"]] == ["state"]


@pytest.mark.django_db
def test_redeliver_a_failed_delivery(api_write, acme, hook, hook_server, settings):
    settings.GATEWAY_WEBHOOK_MAX_ATTEMPTS = 1
    hook_server.responses = [500]
    webhook_event_emit(tenant=acme, event="replication.failed", data={})
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert webhook_deliver_task(delivery_id=delivery.pk) == "failed"
    path = f"{BASE}/{hook.pk}/deliveries/{delivery.pk}/redeliver"
    response = api_write.post(path)
    assert response.status_code == 202, response.content
    assert (response.json()["state"], response.json()["attempts"], response.json()["error"]) == ("pending", 0, "")
    before = rows()
    assert_problem(api_write.post(path), 409)  # pending: on its way already
    assert rows() == before
    assert webhook_deliver_task(delivery_id=delivery.pk) == "delivered"
    first, second = hook_server.requests
    assert first.headers["X-Wharf-Delivery"] == second.headers["X-Wharf-Delivery"] and first.body == second.body
    assert hook_server.signature_ok(second, SECRET)
    assert AuditEvent.objects.filter(action="webhook.redeliver", target=str(delivery.pk)).count() == 1
    assert_problem(api_write.post(f"{BASE}/{hook.pk}/deliveries/{delivery.pk + 999}/redeliver"), 404)


@pytest.mark.django_db
def test_other_tenants_webhooks_are_404(api_write, acme, other_tenant, hook_server):
    theirs = webhook_endpoint_create(tenant=other_tenant, url=hook_server.url, events=["*"]).endpoint
    webhook_event_emit(tenant=other_tenant, event="integrity.problem", data={})
    delivery = WebhookDelivery.objects.get(endpoint=theirs)
    webhook_deliver_task(delivery_id=delivery.pk)
    before = rows()
    for method, path, body in _ops(theirs.pk, delivery.pk)[2:]:
        assert_problem(_call(api_write, method, path, body), 404)
    assert rows() == before
    assert api_write.get(BASE).json()["results"] == []


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(api_read, acme, hook_server, django_assert_max_num_queries):
    endpoints = [webhook_endpoint_create(tenant=acme, url=f"{hook_server.url}/{i}", events=["*"]).endpoint for i in range(30)]
    for _ in range(3):
        webhook_event_emit(tenant=acme, event="integrity.problem", data={})
    with django_assert_max_num_queries(7):
        assert len(api_read.get(BASE, limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(7):
        assert len(api_read.get(BASE, limit=50).json()["results"]) == 30
    for limit in (1, 3):
        with django_assert_max_num_queries(8):
            assert len(api_read.get(f"{BASE}/{endpoints[0].pk}/deliveries", limit=limit).json()["results"]) == limit


@pytest.mark.django_db
def test_admin_role_manages_webhooks(acme, hook, delivered):
    api = _as(acme, Membership.Role.ADMIN)
    one = f"{BASE}/{hook.pk}"
    assert api.get(BASE).status_code == 200
    assert api.post(BASE, {"url": "http://127.0.0.1:9/x", "events": ["*"]}).status_code == 201
    assert api.patch(one, {"description": "x"}, HTTP_IF_MATCH=_etag(api, one)).status_code == 200
    assert api.post(f"{one}/test").status_code == 202
    assert api.get(f"{one}/deliveries").status_code == 200
    assert api.post(f"{one}/deliveries/{delivered.pk}/redeliver").status_code == 202
    assert api.delete(one, HTTP_IF_MATCH=_etag(api, one)).status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize("op", range(8))
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_unauthenticated_401(request, acme, hook, delivered, op, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = rows()
    assert_problem(_call(api, *_ops(hook.pk, delivered.pk)[op]), 401)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("op", range(8))
def test_registry_only_token_and_robots_403(registry_only, acme, hook, delivered, op):
    robot = Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret)
    before = rows()
    assert_problem(_call(registry_only, *_ops(hook.pk, delivered.pk)[op]), 403)
    assert_problem(_call(robot, *_ops(hook.pk, delivered.pk)[op]), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("op", [1, 3, 4, 5, 7])
def test_api_read_cannot_write(api_read, acme, hook, delivered, op):
    before = rows()
    assert_problem(_call(api_read, *_ops(hook.pk, delivered.pk)[op]), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("op", range(8))
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_403(acme, hook, delivered, op, role):
    api = _as(acme, role)
    before = rows()
    assert_problem(_call(api, *_ops(hook.pk, delivered.pk)[op]), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("op", range(8))
@pytest.mark.parametrize("who", ["outsider", "staff"])
def test_non_members_404(request, acme, hook, delivered, op, who):
    api = request.getfixturevalue(who)
    before = rows()
    assert_problem(_call(api, *_ops(hook.pk, delivered.pk)[op]), 404)
    assert rows() == before
