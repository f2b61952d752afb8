"""Staff's plans in the admin API (decision 0046): list, create (custom plans, Idempotency-Key), get, change (If-Match)."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership, Tenant
from billing.models import Plan
from billing.services import subscription_start
from tests.api.callers import caller
from tests.api.conftest import Api, assert_problem
from tests.api.test_billing import state

pytestmark = pytest.mark.django_db
BASE = "/api/v1/admin/plans"
CUSTOM = {"code": "acme-enterprise", "name": "Acme Enterprise", "monthly_price_minor": 99000, "members_limit": 500}


def etag(api: Api, code: str) -> dict:
    return {"HTTP_IF_MATCH": api.get(f"{BASE}/{code}")["ETag"]}


def test_staff_list_every_plan_inactive_ones_too(staff):
    Plan.objects.filter(code="team").update(is_active=False)
    codes = [p["code"] for p in staff.get(BASE).json()["results"]]
    assert codes == ["free", "pro", "team"]
    assert staff.get(f"{BASE}/team").json()["is_active"] is False


def test_staff_create_a_custom_plan_once(staff):
    response = staff.post(BASE, CUSTOM, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"] == "acme-enterprise" and body["members_limit"] == 500 and body["storage_quota_bytes"] is None
    assert response["Location"] == f"{BASE}/acme-enterprise" and response["ETag"] == staff.get(response["Location"])["ETag"]
    replay = staff.post(BASE, CUSTOM, HTTP_IDEMPOTENCY_KEY="k1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert Plan.objects.filter(code="acme-enterprise").count() == 1
    assert AuditEvent.objects.filter(action="plan.create", target="acme-enterprise").count() == 1
    before = state()
    problem = assert_problem(staff.post(BASE, {**CUSTOM, "name": "Again"}), 409)
    assert "exists already" in problem["detail"]
    assert state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X"}, "code"),
        ({"code": "Bad Code", "name": "X"}, "code"),
        ({"code": "x" * 33, "name": "X"}, "code"),
        ({"code": "ok"}, "name"),
        ({"code": "ok", "name": "X", "monthly_price_minor": -1}, "monthly_price_minor"),
        ({"code": "ok", "name": "X", "currency": "usd"}, "currency"),
        ({"code": "ok", "name": "X", "members_limit": 2**31}, "members_limit"),
        ({"code": "ok", "name": "X", "storage_quota_bytes": 2**63}, "storage_quota_bytes"),
        ({"code": "ok", "name": "X", "is_active": "maybe"}, "is_active"),
    ],
)
def test_bad_plans_are_400_naming_the_field_and_create_nothing(staff, body, field):
    before = state()
    problem = assert_problem(staff.post(BASE, body), 400)
    assert field in [e["field"] for e in problem["errors"]]
    assert state() == before


def test_changing_a_plan_rewrites_its_subscribers_limits(staff, acme, other_tenant):
    subscription_start(tenant=acme, plan_code="free")
    subscription_start(tenant=other_tenant, plan_code="pro")
    response = staff.client.patch(
        f"{BASE}/free", {"members_limit": 5, "storage_quota_bytes": None}, content_type="application/json",
        **staff.headers, **etag(staff, "free"),
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["members_limit"] == 5
    acme_row, globex = Tenant.objects.get(pk=acme.pk), Tenant.objects.get(pk=other_tenant.pk)
    assert (acme_row.members_limit, acme_row.storage_quota_bytes) == (5, None)
    assert globex.members_limit == 10  # another plan's subscriber is untouched
    assert AuditEvent.objects.filter(action="plan.update", target="free").get().detail["tenants"] == 1


def test_a_plan_change_needs_if_match(staff):
    before = state()
    assert_problem(staff.patch(f"{BASE}/free", {"members_limit": 5}), 428)
    assert_problem(staff.patch(f"{BASE}/free", {"members_limit": 5}, HTTP_IF_MATCH='"stale"'), 412)
    assert_problem(staff.patch(f"{BASE}/nope", {"members_limit": 5}, HTTP_IF_MATCH="*"), 404)
    problem = assert_problem(staff.patch(f"{BASE}/free", {"members_limit": -1}, HTTP_IF_MATCH="*"), 400)
    assert [e["field"] for e in problem["errors"]] == ["members_limit"]
    assert state() == before


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 401),
        ("revoked", 401),
        ("expired", 401),
        ("registry_only", 403),
        ("robot", 403),
        (Membership.Role.OWNER, 403),
        (Membership.Role.ADMIN, 403),
        ("outsider", 403),
    ],
)
def test_only_staff_manage_plans_and_denial_changes_nothing(request, acme, who, status):
    api = caller(request, acme, who)
    before = state()
    assert_problem(api.get(BASE), status)
    assert_problem(api.get(f"{BASE}/free"), status)
    assert_problem(api.post(BASE, CUSTOM), status)
    assert_problem(api.patch(f"{BASE}/free", {"members_limit": 1}, HTTP_IF_MATCH="*"), status)
    assert state() == before


def test_a_staff_token_without_the_admin_scope_is_refused(acme):
    from tests.api.conftest import token
    from tests.factories import UserFactory

    api = Api(token(UserFactory(username="sid", is_staff=True), ["api:read", "api:write"]))
    before = state()
    assert_problem(api.post(BASE, CUSTOM), 403)
    assert state() == before
