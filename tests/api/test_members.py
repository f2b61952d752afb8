"""Members under /api/v1/tenants/{slug}/members: list, get (ETag), change role and remove (If-Match); owner rules; the access matrix."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import AuditEvent, Membership
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member

BASE = "/api/v1/tenants/acme/members"
R = Membership.Role


def _role(acme, username: str) -> str | None:
    return Membership.objects.filter(tenant=acme, user__username=username).values_list("role", flat=True).first()


def _as(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), scopes))


OPS = [
    ("get", BASE, None),
    ("get", f"{BASE}/rita", None),
    ("patch", f"{BASE}/rita", {"role": "writer"}),
    ("delete", f"{BASE}/rita", None),
]
WRITES = OPS[2:]
ANY = {"HTTP_IF_MATCH": "*"}  # denials are decided before the precondition: the matrix sends a matching one


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path, **ANY)
    return api.patch(path, body, **ANY)


def _etag(api: Api, username: str) -> dict[str, str]:
    response = api.get(f"{BASE}/{username}")
    assert response.status_code == 200, response.content
    return {"HTTP_IF_MATCH": response["ETag"]}


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
def test_get_one_member_with_etag(api_read, acme, reader):
    response = api_read.get(f"{BASE}/rita")
    assert response.status_code == 200
    assert response.json() == {"username": "rita", "role": "reader", "created_at": response.json()["created_at"]}
    assert response["ETag"].startswith('"') and api_read.get(f"{BASE}/rita")["ETag"] == response["ETag"]
    assert api_read.get(f"{BASE}/olivia")["ETag"] != response["ETag"]
    assert_problem(api_read.get(f"{BASE}/nobody"), 404)


@pytest.mark.django_db
def test_change_role_and_remove(api_write, acme, reader):
    response = api_write.patch(f"{BASE}/rita", {"role": "writer"}, **_etag(api_write, "rita"))
    assert response.status_code == 200, response.content
    assert response.json() == {"username": "rita", "role": "writer", "created_at": response.json()["created_at"]}
    assert response["ETag"] == api_write.get(f"{BASE}/rita")["ETag"]
    assert _role(acme, "rita") == "writer"
    assert AuditEvent.objects.filter(action="membership.set", target="rita", detail__previous="reader").exists()
    assert api_write.delete(f"{BASE}/rita", HTTP_IF_MATCH=response["ETag"]).status_code == 204
    assert _role(acme, "rita") is None
    assert AuditEvent.objects.filter(action="membership.remove", target="rita").exists()
    assert_problem(api_write.delete(f"{BASE}/rita", **ANY), 404)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["patch", "delete"])
def test_if_match_required_428_and_stale_412(api_write, acme, reader, method):
    stale = _etag(api_write, "rita")
    make_member(acme, R.WRITER, username="wendy")  # another member changes nothing of rita's: her ETag stays
    assert _etag(api_write, "rita") == stale
    api_write.patch(f"{BASE}/rita", {"role": "admin"}, **stale)  # now it changes
    before = snapshot()
    call = getattr(api_write, method)
    args = (f"{BASE}/rita", {"role": "writer"}) if method == "patch" else (f"{BASE}/rita",)
    assert_problem(call(*args), 428)
    assert_problem(call(*args, **stale), 412)
    assert_problem(call(*args, HTTP_IF_MATCH='W/"weak"'), 412)
    assert snapshot() == before
    assert call(*args, **_etag(api_write, "rita")).status_code in (200, 204)


@pytest.mark.django_db
def test_validation_and_unknown_member(api_write, acme, reader):
    before = snapshot()
    problem = assert_problem(api_write.patch(f"{BASE}/rita", {"role": "god"}, **ANY), 400)
    assert problem["errors"][0]["field"] == "role"
    assert_problem(api_write.patch(f"{BASE}/rita", {}, **ANY), 400)
    assert_problem(api_write.patch(f"{BASE}/nobody", {"role": "writer"}, **ANY), 404)
    assert_problem(api_write.delete(f"{BASE}/nobody", **ANY), 404)
    assert snapshot() == before


@pytest.mark.django_db
def test_last_owner_cannot_be_demoted_or_removed_409(api_write, acme):
    before = snapshot()
    assert_problem(api_write.patch(f"{BASE}/olivia", {"role": "admin"}, **_etag(api_write, "olivia")), 409)
    assert_problem(api_write.delete(f"{BASE}/olivia", **_etag(api_write, "olivia")), 409)
    assert snapshot() == before


@pytest.mark.django_db
def test_owner_makes_owner_then_can_step_down(api_write, acme, reader):
    assert api_write.patch(f"{BASE}/rita", {"role": "owner"}, **ANY).json()["role"] == "owner"
    assert api_write.patch(f"{BASE}/olivia", {"role": "admin"}, **_etag(api_write, "olivia")).status_code == 200
    assert _role(acme, "olivia") == "admin"


@pytest.mark.django_db
def test_admin_cannot_grant_or_touch_owner_403(acme, reader):
    api = _as(acme, R.ADMIN)
    make_member(acme, R.OWNER, username="otto")
    before = snapshot()
    assert_problem(api.patch(f"{BASE}/rita", {"role": "owner"}, **_etag(api, "rita")), 403)
    assert_problem(api.patch(f"{BASE}/otto", {"role": "reader"}, **_etag(api, "otto")), 403)
    assert_problem(api.delete(f"{BASE}/otto", **_etag(api, "otto")), 403)
    assert snapshot() == before
    assert api.patch(f"{BASE}/rita", {"role": "admin"}, **_etag(api, "rita")).status_code == 200
    assert api.delete(f"{BASE}/rita", **_etag(api, "rita")).status_code == 204


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


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_demotions_of_the_last_two_owners_cannot_both_succeed(acme):
    """Two owners demote each other at once, each in its own thread and database connection: one wins, one owner stays."""
    make_member(acme, R.OWNER, username="otto")
    olivia = Api(token(Membership.objects.get(tenant=acme, user__username="olivia").user, ["api:write"]))
    otto = Api(token(Membership.objects.get(tenant=acme, user__username="otto").user, ["api:write"]))
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def demote(api: Api, who: str, whom: str) -> None:
        try:
            barrier.wait(timeout=10)
            statuses[who] = api.patch(f"{BASE}/{whom}", {"role": "admin"}, **ANY).status_code
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(olivia, "olivia", "otto")),
        threading.Thread(target=demote, args=(otto, "otto", "olivia")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # The loser gets 409 when it read its own role (owner) before the winner committed and then lost the
    # last-owner check under the lock, or 403 when its request began after that commit: it was an admin by then,
    # and admins do not change owners. Both serialisations are right; what may never happen is two 200s.
    assert sorted(statuses.values()) in ([200, 403], [200, 409]), statuses
    assert Membership.objects.filter(tenant=acme, role=R.OWNER).count() == 1
