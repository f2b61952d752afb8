"""Members under /api/v1/tenants/{slug}/members: list, change role, remove; owner rules; the access matrix."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member

BASE = "/api/v1/tenants/acme/members"
R = Membership.Role


def _role(acme, username: str) -> str | None:
    return Membership.objects.filter(tenant=acme, user__username=username).values_list("role", flat=True).first()


def _as(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), scopes))


OPS = [("get", BASE, None), ("patch", f"{BASE}/rita", {"role": "writer"}), ("delete", f"{BASE}/rita", None)]
WRITES = OPS[1:]


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path)
    return api.patch(path, body)


@pytest.mark.django_db
def test_list_any_member_and_pagination(acme, reader):
    for i in range(3):
        make_member(acme, R.WRITER, username=f"w{i}")
    api = Api(token(reader, ["api:read"]))
    names, url = [], f"{BASE}?limit=2"
    while url:
        page = api.client.get(url, **api.headers).json()
        names += [(m["username"], m["role"]) for m in page["results"]]
        url = page["next"]
    assert names == [("olivia", "owner"), ("rita", "reader"), ("w0", "writer"), ("w1", "writer"), ("w2", "writer")]


@pytest.mark.django_db
def test_change_role_and_remove(api_write, acme, reader):
    response = api_write.patch(f"{BASE}/rita", {"role": "writer"})
    assert response.status_code == 200, response.content
    assert response.json() == {"username": "rita", "role": "writer", "created_at": response.json()["created_at"]}
    assert _role(acme, "rita") == "writer"
    assert AuditEvent.objects.filter(action="membership.set", target="rita", detail__previous="reader").exists()
    assert api_write.delete(f"{BASE}/rita").status_code == 204
    assert _role(acme, "rita") is None
    assert AuditEvent.objects.filter(action="membership.remove", target="rita").exists()
    assert_problem(api_write.delete(f"{BASE}/rita"), 404)


@pytest.mark.django_db
def test_validation_and_unknown_member(api_write, acme, reader):
    before = snapshot()
    problem = assert_problem(api_write.patch(f"{BASE}/rita", {"role": "god"}), 400)
    assert problem["errors"][0]["field"] == "role"
    assert_problem(api_write.patch(f"{BASE}/rita", {}), 400)
    assert_problem(api_write.patch(f"{BASE}/nobody", {"role": "writer"}), 404)
    assert snapshot() == before


@pytest.mark.django_db
def test_last_owner_cannot_be_demoted_or_removed_409(api_write, acme):
    before = snapshot()
    assert_problem(api_write.patch(f"{BASE}/olivia", {"role": "admin"}), 409)
    assert_problem(api_write.delete(f"{BASE}/olivia"), 409)
    assert snapshot() == before


@pytest.mark.django_db
def test_owner_makes_owner_then_can_step_down(api_write, acme, reader):
    assert api_write.patch(f"{BASE}/rita", {"role": "owner"}).json()["role"] == "owner"
    assert api_write.patch(f"{BASE}/olivia", {"role": "admin"}).status_code == 200
    assert _role(acme, "olivia") == "admin"


@pytest.mark.django_db
def test_admin_cannot_grant_or_touch_owner_403(acme, reader):
    api = _as(acme, R.ADMIN)
    make_member(acme, R.OWNER, username="otto")
    before = snapshot()
    assert_problem(api.patch(f"{BASE}/rita", {"role": "owner"}), 403)
    assert_problem(api.patch(f"{BASE}/otto", {"role": "reader"}), 403)
    assert_problem(api.delete(f"{BASE}/otto"), 403)
    assert snapshot() == before
    assert api.patch(f"{BASE}/rita", {"role": "admin"}).status_code == 200
    assert api.delete(f"{BASE}/rita").status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_unauthenticated_401(request, acme, reader, method, path, body, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 401)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
def test_registry_only_token_403(registry_only, acme, reader, method, path, body):
    before = snapshot()
    assert_problem(_call(registry_only, method, path, body), 403)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_api_read_cannot_write(api_read, acme, reader, method, path, body):
    before = snapshot()
    assert_problem(_call(api_read, method, path, body), 403)
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("role", [R.READER, R.WRITER])
def test_readers_and_writers_cannot_write(acme, reader, method, path, body, role):
    api = _as(acme, role)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 403)
    assert snapshot() == before
    assert api.get(BASE).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), OPS)
@pytest.mark.parametrize("who", ["outsider", "staff"])
def test_non_members_404(request, acme, reader, method, path, body, who):
    api = request.getfixturevalue(who)
    before = snapshot()
    assert_problem(_call(api, method, path, body), 404)
    assert snapshot() == before


@pytest.mark.django_db
def test_robot_secrets_cannot_list_or_change_members(acme, reader):
    from accounts.services import robot_create

    api = Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret)
    before = snapshot()
    for method, path, body in OPS:
        assert_problem(_call(api, method, path, body), 403)
    assert snapshot() == before
