"""Robot accounts under /api/v1/tenants/{slug}/robots: CRUD, rotate, the access matrix, pagination."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership, RobotAccount
from accounts.services import robot_create
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member

BASE = "/api/v1/tenants/acme/robots"


@pytest.fixture
def ci(acme) -> RobotAccount:
    return robot_create(tenant=acme, name="ci", scopes=["pull"]).robot


def _as(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), scopes))


# (method, path, body): every robot operation
OPS = [
    ("get", BASE, None),
    ("post", BASE, {"name": "new", "scopes": ["pull"]}),
    ("patch", f"{BASE}/ci", {"scopes": ["pull", "push"]}),
    ("post", f"{BASE}/ci/rotate", None),
    ("delete", f"{BASE}/ci", None),
]
WRITES = OPS[1:]


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path)
    return getattr(api, method)(path, body)


@pytest.mark.django_db
def test_create_shows_the_secret_once_and_it_logs_in(api_write, acme):
    response = api_write.post(
        BASE, {"name": "deploy", "scopes": ["pull", "api:read"], "repositories": ["app/*"], "expires_in_days": 30}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "acme+deploy" and body["secret"].startswith("wharf_rbt_")
    assert body["scopes"] == ["pull", "api:read"] and body["repositories"] == ["app/*"] and body["expires_at"]
    assert Api(body["secret"]).get("/api/v1/tenants/acme").status_code == 200
    assert "secret" not in api_write.get(BASE).json()["results"][0]
    assert AuditEvent.objects.filter(action="robot.create", target="acme+deploy", actor="olivia").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["pull"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes.0"),
        ({"name": "x", "scopes": ["pull"], "expires_in_days": 0}, "expires_in_days"),
    ],
)
def test_create_validation(api_write, acme, body, field):
    before = snapshot()
    problem = assert_problem(api_write.post(BASE, body), 400)
    assert field in [e["field"] for e in problem["errors"]]
    assert snapshot() == before


@pytest.mark.django_db
def test_create_bad_name_or_pattern_and_duplicate(api_write, acme, ci):
    before = snapshot()
    assert_problem(api_write.post(BASE, {"name": "Bad Name!", "scopes": ["pull"]}), 400)
    assert_problem(api_write.post(BASE, {"name": "ci", "scopes": ["pull"]}), 409)
    assert snapshot() == before


@pytest.mark.django_db
def test_update_changes_only_what_is_sent(api_write, acme, ci):
    response = api_write.patch(f"{BASE}/ci", {"repositories": ["a/*"], "expires_in_days": 7})
    assert response.status_code == 200, response.content
    assert response.json()["scopes"] == ["pull"] and response.json()["repositories"] == ["a/*"]
    assert response.json()["expires_at"] is not None and "secret" not in response.json()
    assert api_write.patch(f"{BASE}/ci", {"expires_in_days": None}).json()["expires_at"] is None
    ci.refresh_from_db()
    assert ci.repositories == ["a/*"] and ci.expires_at is None
    assert AuditEvent.objects.filter(action="robot.update", target="acme+ci").count() == 2


@pytest.mark.django_db
def test_update_validation_unknown_and_revoked(api_write, acme, ci):
    before = snapshot()
    assert_problem(api_write.patch(f"{BASE}/ci", {"scopes": ["admin"]}), 400)
    assert_problem(api_write.patch(f"{BASE}/ci", {"expires_in_days": 5000}), 400)
    assert_problem(api_write.patch(f"{BASE}/nobody", {"scopes": ["pull"]}), 404)
    assert snapshot() == before
    api_write.delete(f"{BASE}/ci")
    assert_problem(api_write.patch(f"{BASE}/ci", {"scopes": ["push"]}), 409)
    assert_problem(api_write.post(f"{BASE}/ci/rotate"), 409)


@pytest.mark.django_db
def test_rotate_new_secret_works_old_one_stops(api_write, acme):
    old = robot_create(tenant=acme, name="bot", scopes=["api:read"]).secret
    assert Api(old).get("/api/v1/tenants/acme").status_code == 200
    response = api_write.post(f"{BASE}/bot/rotate")
    assert response.status_code == 200, response.content
    new = response.json()["secret"]
    assert new != old
    assert_problem(Api(old).get("/api/v1/tenants/acme"), 401)
    assert Api(new).get("/api/v1/tenants/acme").status_code == 200
    assert AuditEvent.objects.filter(action="robot.rotate", target="acme+bot").exists()
    assert_problem(api_write.post(f"{BASE}/nobody/rotate"), 404)


@pytest.mark.django_db
def test_revoke(api_write, acme):
    secret = robot_create(tenant=acme, name="bot", scopes=["api:read"]).secret
    assert api_write.delete(f"{BASE}/bot").status_code == 204
    assert api_write.delete(f"{BASE}/bot").status_code == 204  # harmless twice
    assert_problem(Api(secret).get("/api/v1/tenants/acme"), 401)
    assert api_write.get(BASE).json()["results"][0]["revoked_at"] is not None
    assert AuditEvent.objects.filter(action="robot.revoke").count() == 1
    assert_problem(api_write.delete(f"{BASE}/nobody"), 404)


@pytest.mark.django_db
def test_list_paginates_by_name(api_read, acme):
    for name in ["e", "c", "a", "d", "b"]:
        robot_create(tenant=acme, name=name, scopes=["pull"])
    names, url = [], f"{BASE}?limit=2"
    while url:
        page = api_read.client.get(url, **api_read.headers).json()
        names += [r["name"] for r in page["results"]]
        url = page["next"]
    assert names == ["a", "b", "c", "d", "e"]
    assert_problem(api_read.get(BASE, limit=0), 400)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_unauthenticated_401(request, acme, ci, method, path, body, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 401)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
def test_registry_only_token_403(registry_only, acme, ci, method, path, body):
    before = snapshot()
    assert_problem(_call(registry_only, method, path, body), 403)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_api_read_cannot_write(api_read, acme, ci, method, path, body):
    before = snapshot()
    assert_problem(_call(api_read, method, path, body), 403)
    assert snapshot() == before
    assert api_read.get(BASE).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_403(acme, ci, method, path, body, role):
    api = _as(acme, role)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 403)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["outsider", "staff"])
def test_non_members_404(request, acme, ci, method, path, body, who):
    api = request.getfixturevalue(who)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 404)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
def test_robot_secrets_403(acme, ci, method, path, body):
    api = Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 403)
    assert snapshot() == before


@pytest.mark.django_db
def test_admin_role_manages_robots(acme, ci):
    api = _as(acme, Membership.Role.ADMIN)
    assert api.get(BASE).status_code == 200
    assert api.post(BASE, {"name": "new", "scopes": ["pull"]}).status_code == 201
    assert api.patch(f"{BASE}/ci", {"scopes": ["push"]}).status_code == 200
    assert api.post(f"{BASE}/ci/rotate").status_code == 200
    assert api.delete(f"{BASE}/ci").status_code == 204
