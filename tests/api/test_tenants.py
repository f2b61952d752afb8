"""Tenants: create, update (ETag/If-Match), delete (202 + job, then deleting), and the access matrix of each."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership, Tenant
from accounts.services import robot_create
from gateway.api.conditional import etag_of
from gateway.registry.models import JobRun
from tests.api.callers import caller
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member, make_tenant

R = Membership.Role
TENANT = "/api/v1/tenants/acme"


def rows() -> dict[str, list]:
    """snapshot() plus the rows these operations write: deletion jobs."""
    return {**snapshot(), "jobs": list(JobRun.objects.order_by("pk").values("pk", "kind", "state"))}


def _as(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), scopes))


def _etag(api: Api) -> str:
    response = api.get(TENANT)
    assert response.status_code == 200, response.content
    return response["ETag"]


# --- create ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_makes_me_owner_and_is_audited(owner, api_write):
    response = api_write.post("/api/v1/tenants", {"slug": "initech", "name": "Initech"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "initech" and body["name"] == "Initech" and body["role"] == "owner"
    assert body["status"] == "active" and body["download_mode"] == "proxied"
    assert response["Location"] == "/api/v1/tenants/initech" and response["ETag"] == etag_of(body)
    assert Membership.objects.get(tenant__slug="initech").user == owner
    assert AuditEvent.objects.filter(action="tenant.create", target="initech", actor="olivia").exists()
    assert api_write.get("/api/v1/tenants/initech")["ETag"] == response["ETag"]


@pytest.mark.django_db
def test_staff_create_like_anyone(staff):
    response = staff.post("/api/v1/tenants", {"slug": "staffco"})
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "staffco"
    assert Membership.objects.get(tenant__slug="staffco").user.username == "sam"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "slug"),
        ({"slug": "Bad_Slug"}, "slug"),
        ({"slug": "api"}, "slug"),
        ({"slug": "x"}, "slug"),
        ({"slug": "ok-co", "name": "n" * 201}, "name"),
    ],
)
def test_create_validation_names_the_field(api_write, acme, payload, field):
    before = rows()
    problem = assert_problem(api_write.post("/api/v1/tenants", payload), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rows() == before


@pytest.mark.django_db
def test_create_taken_slug_409(api_write, acme, other_tenant):
    before = rows()
    assert_problem(api_write.post("/api/v1/tenants", {"slug": "globex"}), 409)
    assert_problem(api_write.post("/api/v1/tenants", {"slug": "acme"}), 409)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired"])
def test_create_unauthenticated_401(request, acme, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = rows()
    assert_problem(api.post("/api/v1/tenants", {"slug": "newco"}), 401)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["registry_only", "api_read", "robot"])
def test_create_refused_403(request, acme, who):
    if who == "robot":
        api = Api(robot_create(tenant=acme, name="r", scopes=["api:read", "api:write"]).secret)
    else:
        api = request.getfixturevalue(who)
    before = rows()
    assert_problem(api.post("/api/v1/tenants", {"slug": "newco"}), 403)
    assert rows() == before


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(owner, api_read, django_assert_max_num_queries):
    for i in range(40):
        make_tenant(f"t{i:02d}", owner=owner)
    with django_assert_max_num_queries(5):
        assert len(api_read.get("/api/v1/tenants", limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(5):
        assert len(api_read.get("/api/v1/tenants", limit=40).json()["results"]) == 40


# --- update ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_update_with_if_match_changes_name_and_download_mode(acme, api_write):
    etag = _etag(api_write)
    response = api_write.patch(TENANT, {"name": "Acme Corp", "download_mode": "redirect"}, HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Acme Corp" and body["download_mode"] == "redirect"
    assert response["ETag"] == etag_of(body) != etag
    acme.refresh_from_db()
    assert acme.name == "Acme Corp" and acme.redirect_blob_downloads is True
    event = AuditEvent.objects.filter(action="tenant.update").latest("pk")
    assert event.detail == {"name": "Acme Corp", "redirect_blob_downloads": True} and event.actor == "olivia"
    assert api_write.get(TENANT)["ETag"] == response["ETag"]
    again = api_write.patch(TENANT, {"download_mode": "proxied"}, HTTP_IF_MATCH="*")
    assert again.json()["download_mode"] == "proxied"


@pytest.mark.django_db
def test_update_needs_if_match_428_and_a_current_one_412(acme, api_write):
    before = rows()
    assert_problem(api_write.patch(TENANT, {"name": "X"}), 428)
    assert_problem(api_write.patch(TENANT, {"name": "X"}, HTTP_IF_MATCH='"0123"'), 412)
    assert_problem(api_write.patch(TENANT, {"name": "X"}, HTTP_IF_MATCH="W/" + _etag(api_write)), 412)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [({"download_mode": "teleport"}, "download_mode"), ({"name": ""}, "name"), ({"name": "n" * 201}, "name")],
)
def test_update_validation_names_the_field(acme, api_write, payload, field):
    before = rows()
    problem = assert_problem(api_write.patch(TENANT, payload, HTTP_IF_MATCH=_etag(api_write)), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert rows() == before


@pytest.mark.django_db
def test_admin_may_update_but_not_delete(acme):
    api = _as(acme, R.ADMIN)
    assert api.patch(TENANT, {"name": "By admin"}, HTTP_IF_MATCH=_etag(api)).status_code == 200
    before = rows()
    assert_problem(api.delete(TENANT, HTTP_IF_MATCH=_etag(api)), 403)
    assert rows() == before


# --- delete ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_answers_202_with_the_job_and_marks_the_tenant_deleting(acme, api_write, reader):
    response = api_write.delete(TENANT, HTTP_IF_MATCH=_etag(api_write))
    assert response.status_code == 202, response.content
    job = JobRun.objects.get(kind="tenant_delete", tenant=acme)
    assert response["Location"] == f"/api/v1/tenants/acme/jobs/{job.pk}"
    assert response.json() == {
        "id": job.pk,
        "kind": "tenant_delete",
        "state": "running",
        "started_at": response.json()["started_at"],
    }
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.DELETING
    assert AuditEvent.objects.filter(action="tenant.delete", target="acme", actor="olivia").exists()
    # While it is purged: its GET shows it deleting; everything else about it is gone.
    assert api_write.get(TENANT).json()["status"] == "deleting"
    assert api_write.get("/api/v1/tenants").json()["results"][0]["status"] == "deleting"
    before = rows()
    assert_problem(api_write.get(f"{TENANT}/members"), 404)
    assert_problem(api_write.patch(TENANT, {"name": "again"}, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.delete(TENANT, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.post(f"{TENANT}/robots", {"name": "r", "scopes": ["pull"]}), 404)
    assert rows() == before


@pytest.mark.django_db
def test_delete_needs_if_match_428_and_a_current_one_412(acme, api_write):
    before = rows()
    assert_problem(api_write.delete(TENANT), 428)
    assert_problem(api_write.delete(TENANT, HTTP_IF_MATCH='"stale"'), 412)
    assert rows() == before


# --- the access matrix of PATCH and DELETE ----------------------------------------------------------

WRITES = [("patch", {"name": "Changed"}), ("delete", None)]
# Who calls, and what they get: 401 unauthenticated, 403 not allowed, 404 not a member of acme.
DENIED = [
    ("anonymous", 401),
    ("revoked", 401),
    ("expired", 401),
    ("registry_only", 403),
    ("api_read", 403),
    ("reader", 403),
    ("writer", 403),
    ("robot", 403),
    ("outsider", 404),
    ("staff", 404),
    ("other_owner", 404),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "body"), WRITES)
@pytest.mark.parametrize(("who", "status"), DENIED)
def test_writes_denied_change_nothing(request, acme, method, body, who, status):
    api = caller(request, acme, who)
    before = rows()
    call = api.patch(TENANT, body, HTTP_IF_MATCH="*") if method == "patch" else api.delete(TENANT, HTTP_IF_MATCH="*")
    assert_problem(call, status)
    assert rows() == before
    # Members still read it (with its ETag); non-members never learn it exists.
    read = api.get(TENANT)
    assert read.status_code == {"reader": 200, "writer": 200, "robot": 200, "outsider": 404, "staff": 404}.get(
        who, read.status_code
    )
    if read.status_code == 200:
        assert read["ETag"] == etag_of(read.json())
