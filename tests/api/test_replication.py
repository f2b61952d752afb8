"""Replication through the API: a tenant's own targets (a second bucket on the session's SeaweedFS), staff-managed
platform targets, the tenant's settings (ETag/If-Match) and its status (lag, last error, counts), the access matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from accounts.services import robot_create
from gateway.core.crypto import secret_decrypt
from gateway.registry.models import Blob
from gateway.replication.models import ObjectReplica, StorageTarget, TenantReplication
from gateway.replication.targets import storage_target_create, tenant_replication_set
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import UserFactory, make_member, make_token
from tests.helpers import Reg, basic, replicate_all

BASE = "/api/v1/tenants/acme/replication"
TARGETS = f"{BASE}/targets"
ADMIN = "/api/v1/admin/replication-targets"


def rows() -> dict[str, list]:
    """snapshot() plus every replication row a denied request must leave alone."""
    return {
        **snapshot(),
        "targets": list(StorageTarget.objects.order_by("pk").values()),
        "settings": list(TenantReplication.objects.order_by("pk").values()),
    }


def _body(bucket: str, name: str = "mine", **extra) -> dict:
    s3 = settings.GATEWAY_S3
    return {
        "name": name,
        "endpoint_url": s3["endpoint_url"],
        "bucket": bucket,
        "region": s3["region"],
        "access_key": s3["access_key"],
        "secret_key": s3["secret_key"],
        **extra,
    }


def _target(bucket: str, *, tenant=None, name: str = "mine") -> StorageTarget:
    body = _body(bucket, name)
    body.pop("name")
    return storage_target_create(tenant=tenant, name=name, **body)


@pytest.fixture
def own(acme, replica_bucket) -> StorageTarget:
    return _target(replica_bucket, tenant=acme)


@pytest.fixture
def platform(db, replica_bucket) -> StorageTarget:
    return _target(replica_bucket, name="shared")


@pytest.fixture
def staff_user(db):
    return UserFactory(username="sid", is_staff=True)


@pytest.fixture
def admin_api(staff_user) -> Api:
    return Api(token(staff_user, ["api:read", "api:write", "admin"]))


def _etag(api: Api, path: str) -> str:
    response = api.get(path)
    assert response.status_code == 200, response.content
    return response["ETag"]


def _put(api: Api, body: dict, **extra):
    return api.client.put(BASE, body, content_type="application/json", **api.headers, **extra)


def _as(acme, role: str) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), ["api:read", "api:write"]))


# (method, path, body) of every tenant operation; writes send If-Match: * so a denial is never a 428.
OPS = [
    ("get", BASE, None),
    ("put", BASE, {"target": "mine"}),
    ("get", f"{BASE}/status", None),
    ("get", TARGETS, None),
    ("post", TARGETS, {"name": "x"}),
    ("get", f"{TARGETS}/mine", None),
    ("patch", f"{TARGETS}/mine", {"enabled": False}),
    ("delete", f"{TARGETS}/mine", None),
]
ADMIN_OPS = [
    ("get", ADMIN, None),
    ("post", ADMIN, {"name": "x"}),
    ("get", f"{ADMIN}/shared", None),
    ("patch", f"{ADMIN}/shared", {"enabled": False}),
    ("delete", f"{ADMIN}/shared", None),
]


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path, HTTP_IF_MATCH="*")
    if method == "put":
        return api.client.put(path, body, content_type="application/json", **api.headers, HTTP_IF_MATCH="*")
    if method == "patch":
        return api.patch(path, body, HTTP_IF_MATCH="*")
    return api.post(path, body)


@pytest.mark.django_db
def test_create_a_tenant_target_credentials_write_only_and_encrypted(api_write, acme, replica_bucket):
    response = api_write.post(TARGETS, _body(replica_bucket))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "name": "mine",
        "platform": False,
        "endpoint_url": settings.GATEWAY_S3["endpoint_url"],
        "bucket": replica_bucket,
        "region": settings.GATEWAY_S3["region"],
        "addressing_style": "path",
        "enabled": True,
        "created_at": body["created_at"],
    }
    got = api_write.get(f"{TARGETS}/mine")
    assert got.json() == body and got["ETag"] == response["ETag"]
    stored = StorageTarget.objects.get(tenant=acme, name="mine")
    secret = settings.GATEWAY_S3["secret_key"]
    assert secret not in stored.secret_key_encrypted and secret_decrypt(stored.secret_key_encrypted) == secret
    assert [t["name"] for t in api_write.get(TARGETS).json()["results"]] == ["mine"]
    assert AuditEvent.objects.filter(action="replication.target.create", tenant=acme, target="mine", actor="olivia").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"name": None}, "name"),
        ({"bucket": "No_Such"}, "bucket"),
        ({"bucket": "wharf-test-no-such-bucket"}, "bucket"),  # valid name, but it does not answer
        ({"bucket": "wharf-test"}, "bucket"),  # the primary bucket itself
        ({"endpoint_url": "ftp://example.com"}, "endpoint_url"),
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"secret_key": ""}, "secret_key"),
    ],
)
def test_create_validation(api_write, acme, replica_bucket, change, field):
    before = rows()
    body = {k: v for k, v in {**_body(replica_bucket), **change}.items() if v is not None}
    problem = assert_problem(api_write.post(TARGETS, body), 400)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert rows() == before


@pytest.mark.django_db
def test_private_endpoints_are_refused_and_names_are_unique_per_owner(api_write, acme, own, platform, replica_bucket, settings):
    before = rows()
    assert_problem(api_write.post(TARGETS, _body(replica_bucket)), 409)
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    problem = assert_problem(api_write.post(TARGETS, _body(replica_bucket, "other")), 400)
    assert "non-public" in problem["detail"]
    assert rows() == before
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = True
    # A platform target's name is free for a tenant's own (each owner has its own names).
    assert api_write.post(TARGETS, _body(replica_bucket, "shared")).status_code == 201


@pytest.mark.django_db
def test_update_needs_if_match_and_checks_new_credentials(api_write, acme, own):
    one = f"{TARGETS}/mine"
    etag = _etag(api_write, one)
    before = rows()
    assert_problem(api_write.patch(one, {"enabled": False}), 428)
    assert_problem(api_write.patch(one, {"enabled": False}, HTTP_IF_MATCH='"stale"'), 412)
    problem = assert_problem(api_write.patch(one, {"access_key": "x"}, HTTP_IF_MATCH=etag), 400)
    assert [e["field"] for e in problem["errors"]] == ["secret_key"]
    problem = assert_problem(api_write.patch(one, {"access_key": "nobody", "secret_key": "wrong"}, HTTP_IF_MATCH=etag), 400)
    assert [e["field"] for e in problem["errors"]] == ["bucket"]
    assert rows() == before
    response = api_write.patch(one, {"enabled": False, "region": "eu-1"}, HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False and response.json()["region"] == "eu-1" and response["ETag"] != etag
    assert "secret_key" not in response.json() and "access_key" not in response.json()
    s3 = settings.GATEWAY_S3
    creds = {"access_key": s3["access_key"], "secret_key": s3["secret_key"]}
    assert api_write.patch(one, creds, HTTP_IF_MATCH=response["ETag"]).status_code == 200
    assert AuditEvent.objects.filter(action="replication.target.update", target="mine").count() == 2


@pytest.mark.django_db
def test_delete_needs_if_match_and_is_refused_while_chosen(api_write, acme, own):
    one = f"{TARGETS}/mine"
    tenant_replication_set(tenant=acme, target=own)
    before = rows()
    assert_problem(api_write.delete(one), 428)
    assert_problem(api_write.delete(one, HTTP_IF_MATCH='"stale"'), 412)
    assert_problem(api_write.delete(one, HTTP_IF_MATCH=_etag(api_write, one)), 409)
    assert rows() == before
    TenantReplication.objects.filter(tenant=acme).delete()
    assert api_write.delete(one, HTTP_IF_MATCH=_etag(api_write, one)).status_code == 204
    assert not StorageTarget.objects.filter(pk=own.pk).exists()
    assert AuditEvent.objects.filter(action="replication.target.delete", target="mine").exists()


@pytest.mark.django_db
def test_settings_choose_own_or_platform_target_under_if_match(api_write, acme, own, platform):
    got = api_write.get(BASE)
    assert got.json() == {"target": None, "platform": None, "enabled": False}
    before = rows()
    assert_problem(_put(api_write, {"target": "mine"}), 428)
    assert_problem(_put(api_write, {"target": "mine"}, HTTP_IF_MATCH='"stale"'), 412)
    assert_problem(_put(api_write, {"target": "shared"}, HTTP_IF_MATCH=got["ETag"]), 404)  # not one of acme's own
    assert_problem(_put(api_write, {"platform": True}, HTTP_IF_MATCH=got["ETag"]), 400)
    assert rows() == before
    response = _put(api_write, {"target": "mine"}, HTTP_IF_MATCH=got["ETag"])
    assert response.status_code == 200, response.content
    assert response.json() == {"target": "mine", "platform": False, "enabled": True}
    assert TenantReplication.objects.get(tenant=acme).target == own
    response = _put(api_write, {"target": "shared", "platform": True}, HTTP_IF_MATCH=response["ETag"])
    assert response.json() == {"target": "shared", "platform": True, "enabled": True}
    assert _etag(api_write, BASE) == response["ETag"]
    response = _put(api_write, {"target": "shared", "platform": True, "enabled": False}, HTTP_IF_MATCH=response["ETag"])
    assert response.json()["enabled"] is False
    response = _put(api_write, {"target": None}, HTTP_IF_MATCH="*")
    assert response.json() == {"target": "shared", "platform": True, "enabled": False}
    audit = AuditEvent.objects.filter(tenant=acme, action__startswith="replication.").exclude(
        action__startswith="replication.target"
    )
    actions = list(audit.order_by("pk").values_list("action", flat=True))
    assert actions == ["replication.enable", "replication.enable", "replication.pause", "replication.disable"]


@pytest.mark.django_db
def test_settings_refuse_disabled_and_other_tenants_targets(api_write, acme, other_tenant, own, replica_bucket):
    _target(replica_bucket, tenant=other_tenant, name="theirs")
    StorageTarget.objects.filter(pk=own.pk).update(enabled=False)
    before = rows()
    problem = assert_problem(_put(api_write, {"target": "mine"}, HTTP_IF_MATCH="*"), 400)
    assert [e["field"] for e in problem["errors"]] == ["target"]
    assert_problem(_put(api_write, {"target": "theirs"}, HTTP_IF_MATCH="*"), 404)
    assert_problem(_put(api_write, {"target": "theirs", "platform": True}, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.get(f"{TARGETS}/theirs"), 404)
    assert_problem(api_write.patch(f"{TARGETS}/theirs", {"enabled": False}, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.delete(f"{TARGETS}/theirs", HTTP_IF_MATCH="*"), 404)
    assert rows() == before
    assert [t["name"] for t in api_write.get(TARGETS).json()["results"]] == ["mine"]


@pytest.mark.django_db
def test_status_lag_counts_and_last_error_from_real_replication(api_read, acme, owner, own, reader):
    not_configured = api_read.get(f"{BASE}/status").json()
    assert not_configured["health"] == "not_configured" and not_configured["objects"]["pending"] == 0
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("app", "1", [b"a", b"b"])
    tenant_replication_set(tenant=acme, target=own)
    Blob.objects.filter(tenant=acme).update(created_at=timezone.now() - timedelta(hours=2))
    status = api_read.get(f"{BASE}/status").json()
    assert status["target"] == "mine" and status["health"] == "lagging" and status["lag_seconds"] >= 2 * 3600 - 5
    assert status["objects"]["not_yet_queued"] == 4 and status["oldest_unreplicated_since"]
    assert replicate_all(acme)["replicated"] == 4  # copied into the tenant's own bucket on SeaweedFS
    status = api_read.get(f"{BASE}/status").json()
    assert status["objects"] == {"replicated": 4, "pending": 0, "failed": 0, "mismatch": 0, "not_yet_queued": 0}
    assert status["health"] == "ok" and status["lag_seconds"] == 0 and status["last_error"] is None
    row = ObjectReplica.objects.filter(tenant=acme, kind="blob").order_by("pk").first()
    ObjectReplica.objects.filter(pk=row.pk).update(state="failed", last_error="boom", pending_since=timezone.now())
    status = Api(token(reader, ["api:read"])).get(f"{BASE}/status").json()  # every member reads the status
    assert status["health"] == "failing" and status["objects"]["failed"] == 1
    assert status["last_error"] == "boom" and status["last_error_at"]


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(api_read, admin_api, acme, django_assert_max_num_queries):
    StorageTarget.objects.bulk_create(
        [
            StorageTarget(tenant=t, name=f"t{i}", endpoint_url="http://s3.example", bucket="b-x")
            for i in range(25)
            for t in (acme, None)
        ]
    )
    for limit in (2, 25):
        with django_assert_max_num_queries(7):
            assert len(api_read.get(TARGETS, limit=limit).json()["results"]) == limit
        with django_assert_max_num_queries(7):
            assert len(admin_api.get(ADMIN, limit=limit).json()["results"]) == limit


@pytest.mark.django_db
def test_staff_manage_platform_targets(admin_api, acme, replica_bucket, platform):
    response = admin_api.post(ADMIN, _body(replica_bucket, "second"))
    assert response.status_code == 201, response.content
    assert response.json()["platform"] is True and "secret_key" not in response.json()
    assert StorageTarget.objects.get(name="second").tenant is None
    assert [t["name"] for t in admin_api.get(ADMIN).json()["results"]] == ["second", "shared"]
    one = f"{ADMIN}/second"
    assert_problem(admin_api.patch(one, {"enabled": False}), 428)
    updated = admin_api.patch(one, {"enabled": False}, HTTP_IF_MATCH=_etag(admin_api, one))
    assert updated.status_code == 200 and updated.json()["enabled"] is False
    tenant_replication_set(tenant=acme, target=platform)
    assert_problem(admin_api.delete(f"{ADMIN}/shared", HTTP_IF_MATCH="*"), 409)  # a tenant chose it
    assert admin_api.delete(one, HTTP_IF_MATCH=updated["ETag"]).status_code == 204
    assert_problem(admin_api.get(one), 404)
    assert_problem(admin_api.get(f"{ADMIN}/mine"), 404)  # tenants' own targets are not platform ones
    assert AuditEvent.objects.filter(action__startswith="replication.target.", tenant=None).count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_OPS)
def test_admin_routes_are_staff_with_the_admin_scope_only(request, acme, platform, staff_user, method, path, body):
    callers = {
        "owner": Api(token(acme.memberships.get(role="owner").user, ["api:read", "api:write"])),
        "staff without the admin scope": Api(token(staff_user, ["api:read", "api:write"])),
        "registry-only": request.getfixturevalue("registry_only"),
        "robot": Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret),
    }
    unauthenticated = [request.getfixturevalue("revoked"), request.getfixturevalue("expired"), Api()]
    before = rows()
    for api in callers.values():
        assert_problem(_call(api, method, path, body), 403)
    for api in unauthenticated:
        assert_problem(_call(api, method, path, body), 401)
    assert rows() == before


@pytest.mark.django_db
def test_admin_role_manages_replication(acme, own, replica_bucket):
    api = _as(acme, Membership.Role.ADMIN)
    assert api.post(TARGETS, _body(replica_bucket, "two")).status_code == 201
    assert _put(api, {"target": "two"}, HTTP_IF_MATCH=_etag(api, BASE)).status_code == 200
    assert api.patch(f"{TARGETS}/mine", {"enabled": False}, HTTP_IF_MATCH=_etag(api, f"{TARGETS}/mine")).status_code == 200
    assert api.delete(f"{TARGETS}/mine", HTTP_IF_MATCH="*").status_code == 204
    assert api.get(f"{BASE}/status").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_unauthenticated_401(request, acme, own, method, path, body, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = rows()
    assert_problem(_call(api, method, path, body), 401)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
def test_registry_only_token_and_robots_403(registry_only, acme, own, method, path, body):
    robot = Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret)
    before = rows()
    assert_problem(_call(registry_only, method, path, body), 403)
    assert_problem(_call(robot, method, path, body), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), [op for op in OPS if op[0] != "get"])
def test_api_read_cannot_write(api_read, acme, own, method, path, body):
    before = rows()
    assert_problem(_call(api_read, method, path, body), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), [op for op in OPS if op[1] != f"{BASE}/status"])
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_403_except_status(acme, own, method, path, body, role):
    api = _as(acme, role)
    before = rows()
    assert_problem(_call(api, method, path, body), 403)
    assert rows() == before
    assert api.get(f"{BASE}/status").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["outsider", "staff"])
def test_non_members_404(request, acme, own, method, path, body, who):
    api = request.getfixturevalue(who)
    before = rows()
    assert_problem(_call(api, method, path, body), 404)
    assert rows() == before


@pytest.mark.django_db
def test_a_tenants_deletion_takes_its_own_targets_even_when_chosen(acme, own, platform):
    tenant_replication_set(tenant=acme, target=own)
    acme.delete()
    assert list(StorageTarget.objects.values_list("name", flat=True)) == ["shared"]


@pytest.mark.django_db
def test_admin_routes_take_a_staff_session_with_csrf(staff_user, owner, platform, replica_bucket):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert [t["name"] for t in browser.get(ADMIN).json()["results"]] == ["shared"]
    before = rows()
    assert_problem(browser.post(ADMIN, _body(replica_bucket, "x"), content_type="application/json"), 403)  # no CSRF token
    member = Client()
    member.force_login(owner)
    assert_problem(member.get(ADMIN), 403)
    assert rows() == before
