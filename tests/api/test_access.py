"""The access matrix of every operation: who gets 200/201/204, 401, 403 or 404, and that a denial changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import PersonalAccessToken
from tests.api.conftest import Api, assert_problem, snapshot, token

# (method, path, body): every operation of this step; paths name the "acme" tenant where they take one.
READS = [("get", "/api/v1/user"), ("get", "/api/v1/user/tokens"), ("get", "/api/v1/tenants"), ("get", "/api/v1/tenants/acme")]


def _call(api: Api, method: str, path: str, owner_token_id: int | None = None):
    if method == "post":
        return api.post(path, {"name": "new", "scopes": ["pull"]})
    if method == "delete":
        return api.delete(path.format(id=owner_token_id))
    return api.get(path)


WRITES = [("post", "/api/v1/user/tokens"), ("delete", "/api/v1/user/tokens/{id}")]
ALL = READS + WRITES


@pytest.fixture
def victim(owner) -> int:
    """One of the owner's tokens, which denied DELETEs try to revoke."""
    return PersonalAccessToken.objects.get(pk=_issue(owner)).pk


def _issue(user) -> int:
    from accounts.services import access_token_issue

    return access_token_issue(user=user, name="victim", scopes=["pull"]).token.pk


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ALL)
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_unauthenticated_callers_get_401_and_change_nothing(request, acme, victim, method, path, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = snapshot()
    response = _call(api, method, path, victim)
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ALL)
def test_registry_only_token_gets_403_and_changes_nothing(registry_only, acme, victim, method, path):
    before = snapshot()
    body = assert_problem(_call(registry_only, method, path, victim), 403)
    assert "api" in body["detail"]
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_api_read_cannot_write(api_read, acme, victim, method, path):
    before = snapshot()
    assert_problem(_call(api_read, method, path, victim), 403)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), READS)
@pytest.mark.parametrize("who", ["api_read", "api_write"])
def test_api_read_and_write_tokens_read(request, acme, method, path, who):
    assert request.getfixturevalue(who).get(path).status_code == 200


@pytest.mark.django_db
def test_api_write_token_writes(api_write, acme, victim):
    assert api_write.post("/api/v1/user/tokens", {"name": "ci", "scopes": ["pull"]}).status_code == 201
    assert api_write.delete(f"/api/v1/user/tokens/{victim}").status_code == 204


@pytest.mark.django_db
def test_member_of_another_tenant_gets_404_not_403(outsider, acme):
    assert_problem(outsider.get("/api/v1/tenants/acme"), 404)
    assert_problem(outsider.get("/api/v1/tenants/no-such-tenant"), 404)
    assert [t["slug"] for t in outsider.get("/api/v1/tenants").json()["results"]] == ["globex"]


@pytest.mark.django_db
def test_another_users_token_cannot_be_revoked_404(outsider, victim):
    before = snapshot()
    assert_problem(outsider.delete(f"/api/v1/user/tokens/{victim}"), 404)
    assert snapshot() == before


@pytest.mark.django_db
def test_staff_is_no_member_of_tenants_it_does_not_belong_to(staff, acme):
    """Staff reach all tenants through /api/v1/admin/… (not built yet), never through member routes."""
    assert staff.get("/api/v1/user").json()["is_staff"] is True
    assert_problem(staff.get("/api/v1/tenants/acme"), 404)
    assert staff.get("/api/v1/tenants").json()["results"] == []


@pytest.mark.django_db
def test_admin_scope_only_for_staff_tokens(owner, staff):
    api = Api(token(owner, ["api:write"]))
    before = snapshot()
    body = assert_problem(api.post("/api/v1/user/tokens", {"name": "x", "scopes": ["admin"]}), 400)
    assert "staff" in body["detail"]
    assert snapshot() == before
    assert staff.post("/api/v1/user/tokens", {"name": "ops", "scopes": ["admin", "api:read"]}).status_code == 201


@pytest.mark.django_db
def test_robot_secret_reads_its_tenant_only(acme, other_tenant):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read"]).secret)
    assert robot.get("/api/v1/tenants/acme").json()["role"] == "robot"
    assert_problem(robot.get("/api/v1/tenants/globex"), 404)
    assert [t["slug"] for t in robot.get("/api/v1/tenants").json()["results"]] == ["acme"]
    assert_problem(robot.get("/api/v1/user"), 403)  # robots have no profile
    registry_robot = Api(robot_create(tenant=acme, name="puller", scopes=["pull"]).secret)
    assert_problem(registry_robot.get("/api/v1/tenants/acme"), 403)


@pytest.mark.django_db
def test_session_needs_csrf_for_writes(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get("/api/v1/user").status_code == 200
    before = snapshot()
    response = client.post("/api/v1/user/tokens", {"name": "x"}, content_type="application/json")
    body = assert_problem(response, 403)
    assert "CSRF" in body["detail"]
    assert snapshot() == before
