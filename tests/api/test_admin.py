"""Platform operators' API /api/v1/admin/…: tenants (list, get, suspend, reactivate, quota) and queues — results, errors, access."""

from __future__ import annotations

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Membership, Tenant
from accounts.tenant_admin import tenant_suspend
from gateway.api.conditional import etag_of
from gateway.core.queues import celery_queue_names
from gateway.registry.services import events
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic, sha

BASE = "/api/v1/admin/tenants"


@pytest.fixture
def staff_user(db):
    return UserFactory(username="sam", is_staff=True)


@pytest.fixture
def staff(staff_user) -> Api:
    return Api(token(staff_user, ["admin"]))


@pytest.fixture
def tenants(acme, reader, other_tenant):
    """acme (owner olivia, reader rita) with one image pushed; globex (one owner); initech ("Initrode Corp", suspended)."""
    reg = Reg(Client(), basic("olivia", make_token(acme.memberships.get(role="owner").user)))
    reg.push_image("app", "v1", [b"layer-one" * 100])
    initech = make_tenant("initech")
    Tenant.objects.filter(pk=initech.pk).update(name="Initrode Corp")
    tenant_suspend(tenant=initech, reason="unpaid invoices", actor="test")
    return reg


def _usage(slug: str) -> int:
    from gateway.registry.selectors import usage_bytes

    return usage_bytes(tenant=Tenant.objects.get(slug=slug))


# -- tenants --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_every_tenant_with_usage_members_and_quota(tenants, staff):
    Tenant.objects.filter(slug="globex").update(storage_quota_bytes=10_000)
    body = staff.get(BASE).json()
    assert [t["slug"] for t in body["results"]] == ["acme", "globex", "initech"]
    acme, globex, initech = body["results"]
    assert acme["stored_bytes"] == _usage("acme") > 900 and acme["member_count"] == 2 and acme["storage_quota_bytes"] is None
    assert globex["stored_bytes"] == 0 and globex["member_count"] == 1 and globex["storage_quota_bytes"] == 10_000
    assert initech["status"] == "suspended" and initech["suspension_reason"] == "unpaid invoices" and initech["suspended_at"]
    assert acme["status"] == "active" and acme["suspended_at"] is None and acme["suspension_reason"] == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,slugs",
    [
        ({"q": "GLO"}, ["globex"]),
        ({"q": "initrode"}, ["initech"]),  # the name
        ({"q": "e"}, ["acme", "globex", "initech"]),
        ({"status": "suspended"}, ["initech"]),
        ({"status": "active", "q": "i"}, []),
        ({"status": "active"}, ["acme", "globex"]),
    ],
)
def test_list_search_and_status_filter(tenants, staff, params, slugs):
    assert [t["slug"] for t in staff.get(BASE, **params).json()["results"]] == slugs


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"status": "closed"}, {"limit": "201"}, {"q": "x" * 201}])
def test_list_validation(tenants, staff, params):
    body = assert_problem(staff.get(BASE, **params), 400)
    assert [e["field"] for e in body["errors"]] == list(params)


@pytest.mark.django_db
def test_list_pages_walk_every_tenant_once(tenants, staff):
    for i in range(5):
        make_tenant(f"t{i}")
    seen, response = [], staff.get(BASE, limit=3)
    while True:
        body = response.json()
        seen += [t["slug"] for t in body["results"]]
        if not body["next"]:
            break
        assert f'<{body["next"]}>; rel="next"' in response["Link"]
        response = staff.client.get(body["next"], **staff.headers)
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 8


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(tenants, staff, django_assert_max_num_queries):
    for i in range(30):
        tenant = make_tenant(f"t{i:02}")
        make_member(tenant, Membership.Role.READER)
    with CaptureQueriesContext(connection) as one:
        assert len(staff.get(BASE, limit=1).json()["results"]) == 1
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(staff.get(BASE, limit=50).json()["results"]) == 33


@pytest.mark.django_db
def test_get_one_tenant_with_etag(tenants, staff):
    response = staff.get(f"{BASE}/initech")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["slug"] == "initech" and body["status"] == "suspended" and body["member_count"] == 1
    assert response["ETag"] == etag_of(body)
    assert staff.get(f"{BASE}/acme").json()["stored_bytes"] == _usage("acme")
    assert_problem(staff.get(f"{BASE}/nope"), 404)


@pytest.mark.django_db
def test_suspend_and_reactivate_are_audited_and_idempotent(tenants, staff):
    response = staff.post(f"{BASE}/acme/suspend", {"reason": "  abuse report #12 "})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "suspended" and body["suspension_reason"] == "abuse report #12" and body["suspended_at"]
    assert response["ETag"] == etag_of(body)
    acme = Tenant.objects.get(slug="acme")
    assert acme.status == "suspended" and acme.suspension_reason == "abuse report #12"
    event = AuditEvent.objects.get(action="tenant.suspend", tenant=acme)
    assert event.actor == "sam" and event.target == "acme" and event.detail == {"reason": "abuse report #12"}
    again = staff.post(f"{BASE}/acme/suspend", {"reason": "another"})
    assert again.status_code == 200 and again.json() == body  # harmless: the first reason and time stay
    assert AuditEvent.objects.filter(action="tenant.suspend", tenant=acme).count() == 1

    response = staff.post(f"{BASE}/acme/reactivate")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active" and response.json()["suspension_reason"] == ""
    assert response.json()["suspended_at"] is None
    event = AuditEvent.objects.get(action="tenant.reactivate", tenant=acme)
    assert event.actor == "sam" and event.detail["reason"] == "abuse report #12"
    assert staff.post(f"{BASE}/acme/reactivate").status_code == 200
    assert AuditEvent.objects.filter(action="tenant.reactivate").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("body,field", [({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": "x" * 501}, "reason")])
def test_suspend_validation(tenants, staff, body, field):
    before = snapshot()
    problem = assert_problem(staff.post(f"{BASE}/acme/suspend", body), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert snapshot() == before


@pytest.mark.django_db
def test_unknown_tenant_is_404_everywhere(tenants, staff):
    assert_problem(staff.post(f"{BASE}/nope/suspend", {"reason": "x"}), 404)
    assert_problem(staff.post(f"{BASE}/nope/reactivate"), 404)
    assert_problem(staff.get(f"{BASE}/nope/quota"), 404)
    assert_problem(staff.patch(f"{BASE}/nope/quota", {"storage_quota_bytes": 1}, HTTP_IF_MATCH="*"), 404)


@pytest.mark.django_db
def test_quota_needs_if_match_and_is_audited(tenants, staff):
    url = f"{BASE}/acme/quota"
    response = staff.get(url)
    assert response.json() == {"tenant": "acme", "storage_quota_bytes": None}
    etag = response["ETag"]
    before = snapshot()
    assert_problem(staff.patch(url, {"storage_quota_bytes": 5000}), 428)
    assert_problem(staff.patch(url, {"storage_quota_bytes": 5000}, HTTP_IF_MATCH='"stale"'), 412)
    assert_problem(staff.patch(url, {"storage_quota_bytes": 5000}, HTTP_IF_MATCH=f"W/{etag}"), 412)  # strong comparison
    assert snapshot() == before

    response = staff.patch(url, {"storage_quota_bytes": 5000}, HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    assert response.json() == {"tenant": "acme", "storage_quota_bytes": 5000}
    assert response["ETag"] == staff.get(url)["ETag"] != etag
    assert Tenant.objects.get(slug="acme").storage_quota_bytes == 5000
    event = AuditEvent.objects.get(action="tenant.quota.set")
    assert event.actor == "sam" and event.detail == {"before": None, "after": 5000}
    assert_problem(staff.patch(url, {"storage_quota_bytes": None}, HTTP_IF_MATCH=etag), 412)  # the old version

    cleared = staff.patch(url, {"storage_quota_bytes": None}, HTTP_IF_MATCH=response["ETag"])
    assert cleared.status_code == 200 and cleared.json()["storage_quota_bytes"] is None
    assert Tenant.objects.get(slug="acme").storage_quota_bytes is None


@pytest.mark.django_db
def test_quota_set_by_operator_is_enforced_at_push(tenants, staff):
    url = f"{BASE}/acme/quota"
    used = _usage("acme")
    assert staff.patch(url, {"storage_quota_bytes": used + 10}, HTTP_IF_MATCH="*").status_code == 200
    r = tenants.post(f"/v2/acme/app/blobs/uploads/?digest={sha(b'x' * 100)}", b"x" * 100)
    assert r.status_code == 403 and "quota" in r.json()["errors"][0]["message"].lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "storage_quota_bytes"),
        ({"storage_quota_bytes": -1}, "storage_quota_bytes"),
        ({"storage_quota_bytes": "lots"}, "storage_quota_bytes"),
    ],
)
def test_quota_validation(tenants, staff, body, field):
    before = snapshot()
    problem = assert_problem(staff.patch(f"{BASE}/acme/quota", body, HTTP_IF_MATCH="*"), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["acme", "initech"])  # active, and suspended, when its deletion started
@pytest.mark.parametrize(
    "method,path,body,verb",
    [
        ("post", "suspend", {"reason": "abuse"}, "suspended"),
        ("post", "reactivate", None, "reactivated"),
        ("patch", "quota", {"storage_quota_bytes": 5000}, "given a quota"),
    ],
)
def test_a_tenant_being_deleted_is_409_and_unchanged(tenants, staff, slug, method, path, body, verb):
    Tenant.objects.filter(slug=slug).update(status=Tenant.Status.DELETING)
    etag = staff.get(f"{BASE}/{slug}/quota")["ETag"]
    before = snapshot()
    kwargs = {"HTTP_IF_MATCH": etag} if method == "patch" else {}
    args = (body,) if body is not None else ()
    problem = assert_problem(getattr(staff, method)(f"{BASE}/{slug}/{path}", *args, **kwargs), 409)
    assert problem["detail"] == f"Tenant {slug!r} is being deleted; it cannot be {verb}."
    assert snapshot() == before
    assert Tenant.objects.get(slug=slug).status == Tenant.Status.DELETING


# -- queues ---------------------------------------------------------------------------------------


@pytest.fixture
def broker():
    """The Celery broker's queues (each priority's list) and the event stream, emptied before and after."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    from gateway.registry.services import stream

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = [f"{name}{Channel.sep}{step}" if step else name for name in celery_queue_names() for step in PRIORITY_STEPS]
    keys += [Channel.unacked_key, events.QUEUE_KEY, stream.PROCESSING_KEY]
    client.delete(*keys)
    yield client
    client.delete(*keys)
    client.close()


@pytest.mark.django_db
def test_queues_report_real_depths(acme, staff, broker):
    body = staff.get("/api/v1/admin/queues").json()
    assert {q["name"] for q in body["queues"]} >= {"celery", "gc", "audit"}
    assert all(q["depth"] == 0 for q in body["queues"])
    assert body["events"] == {"queued": 0, "processing": 0} and body["unacknowledged"] == 0
    for _ in range(3):
        current_app.send_task("gateway.gc.tenant", kwargs={"tenant_id": 0}, queue="gc")
    current_app.send_task("gateway.usage.flush")
    current_app.send_task("gateway.usage.flush", priority=6)  # another list of the same queue
    for i in range(4):
        events.record(tenant=acme, repository="app", digest=f"sha256:{i:064}", size=1, kind="blob", direction="push")
    broker.rpush("wharf:usage:processing", b"{}")
    body = staff.get("/api/v1/admin/queues").json()
    depths = {q["name"]: q["depth"] for q in body["queues"]}
    assert depths["gc"] == 3 and depths["celery"] == 2 and depths["audit"] == 0
    assert body["events"] == {"queued": 4, "processing": 1}


@pytest.mark.django_db
@pytest.mark.parametrize("setting", ["CELERY_BROKER_URL", "REDIS_URL"])
def test_queues_answer_503_when_redis_is_down(staff, setting):
    from django.test import override_settings

    with override_settings(**{setting: "redis://127.0.0.1:1/0"}):  # nothing listens on port 1
        response = staff.get("/api/v1/admin/queues")
    body = assert_problem(response, 503)
    assert "unavailable" in body["detail"] and response["Retry-After"] == "5"


# -- who may call them ----------------------------------------------------------------------------

OPERATIONS = [
    ("get", BASE, {}),
    ("get", f"{BASE}/acme", {}),
    ("post", f"{BASE}/acme/suspend", {"body": {"reason": "x"}}),
    ("post", f"{BASE}/initech/reactivate", {}),
    ("get", f"{BASE}/acme/quota", {}),
    ("patch", f"{BASE}/acme/quota", {"body": {"storage_quota_bytes": 1}, "HTTP_IF_MATCH": "*"}),
    ("get", "/api/v1/admin/queues", {}),
]


def _call(api: Api, method: str, path: str, kwargs: dict):
    kwargs = dict(kwargs)
    body = kwargs.pop("body", None)
    if method == "get":
        return api.get(path)
    return getattr(api, method)(path, body, **kwargs)


def _callers(acme, owner, reader, outsider, registry_only, revoked, expired, staff_user) -> dict[str, tuple[Api, int]]:
    return {
        "anonymous": (Api(), 401),
        "reader": (Api(token(reader, ["api:read", "api:write"])), 403),
        "owner (not staff)": (Api(token(owner, ["api:read", "api:write"])), 403),
        "member of another tenant": (outsider, 403),
        "staff without the admin scope": (Api(token(staff_user, ["api:read", "api:write"])), 403),
        "staff, registry-only token": (Api(token(staff_user, ["pull", "push", "delete"])), 403),
        "token without api scopes": (registry_only, 403),
        "revoked": (revoked, 401),
        "expired": (expired, 401),
        "inactive staff": (Api(token(UserFactory(username="old", is_staff=True, is_active=False), ["admin"])), 401),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,kwargs", OPERATIONS)
def test_only_staff_with_the_admin_scope_get_in(
    tenants, acme, owner, reader, outsider, registry_only, revoked, expired, staff_user, broker, method, path, kwargs
):
    callers = _callers(acme, owner, reader, outsider, registry_only, revoked, expired, staff_user)
    from gateway.registry.models import Blob, Manifest

    def rows():
        return {**snapshot(), "blobs": list(Blob.objects.values_list("pk", flat=True)), "manifests": Manifest.objects.count()}

    before = rows()
    for name, (api, status) in callers.items():
        body = assert_problem(_call(api, method, path, kwargs), status)
        if status == 403:
            assert "platform operators" in body["detail"] or "admin" in body["detail"], name
        assert rows() == before, name
    response = _call(Api(token(staff_user, ["api:read", "api:write", "admin"])), method, path, kwargs)
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_robots_never_reach_the_admin_api(acme):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["pull", "api:read", "api:write"]).secret)
    assert_problem(robot.get(BASE), 403)


@pytest.mark.django_db
def test_staff_session_with_csrf_for_writes(tenants, staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.get(BASE).status_code == 200
    before = snapshot()
    body = assert_problem(client.post(f"{BASE}/acme/suspend", {"reason": "x"}, content_type="application/json"), 403)
    assert "CSRF" in body["detail"] and snapshot() == before
    plain = Client()
    plain.force_login(make_member(Tenant.objects.get(slug="acme"), Membership.Role.OWNER, username="notstaff"))
    assert_problem(plain.get(BASE), 403)
