"""Plans, subscriptions and billing usage in the admin API (decision 0046): the access matrix, If-Match, the figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Tenant
from billing.models import Plan, Subscription, UsageRecord
from billing.models.usage import TENANT_TOTAL
from billing.services import subscription_start
from gateway.registry.models import Repository
from tests.api.callers import DENIED, caller
from tests.api.conftest import Api, assert_problem, snapshot

pytestmark = pytest.mark.django_db
SUB = "/api/v1/tenants/acme/subscription"
USAGE = "/api/v1/tenants/acme/billing/usage"
ANY = {"HTTP_IF_MATCH": "*"}  # denials are decided before the precondition: the matrix sends a matching one


def state() -> dict:
    """snapshot() and what billing writes: subscriptions and plans."""
    return {
        **snapshot(),
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
        "plans": list(Plan.objects.order_by("pk").values()),
    }


@pytest.fixture
def free(acme) -> Tenant:
    subscription_start(tenant=acme, plan_code="free")
    return Tenant.objects.get(pk=acme.pk)


def put(api: Api, body: dict, **headers):
    return api.client.put(SUB, body, content_type="application/json", **api.headers, **headers)


def etag(api: Api) -> dict:
    return {"HTTP_IF_MATCH": api.get(SUB)["ETag"]}


# -- plans ----------------------------------------------------------------------


def test_plans_are_the_open_ones_cheapest_first(free, api_read):
    Plan.objects.create(code="legacy", name="Legacy", is_active=False)
    body = api_read.get("/api/v1/plans").json()
    assert [p["code"] for p in body["results"]] == ["free", "pro", "team"]
    pro = body["results"][1]
    assert pro["monthly_price_minor"] == 900 and pro["currency"] == "USD" and pro["private_repositories_limit"] is None
    assert pro["storage_quota_bytes"] == 50 * 10**9 and pro["pulls_per_window_authenticated"] == 5000


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("revoked", 401), ("expired", 401), ("registry_only", 403)])
def test_plans_need_a_valid_api_token(request, free, who, status):
    assert_problem(caller(request, free, who).get("/api/v1/plans"), status)


# -- subscription: read -----------------------------------------------------------


def test_owner_reads_the_subscription_with_its_etag(free, api_read):
    response = api_read.get(SUB)
    body = response.json()
    assert response["ETag"].startswith('"')
    assert body["tenant"] == "acme" and body["status"] == "active" and body["plan"]["code"] == "free"
    assert body["limits"]["members_limit"] == 3 and body["limits"]["storage_quota_bytes"] == 2 * 10**9
    assert datetime.fromisoformat(body["current_period_end"]) > datetime.fromisoformat(body["current_period_start"])


def test_a_tenant_without_subscription_reads_as_none(acme, api_read):
    body = api_read.get(SUB).json()
    assert body["plan"] is None and body["status"] is None and body["limits"]["members_limit"] is None


@pytest.mark.parametrize(
    ("who", "get", "change"),
    [
        ("owner", 200, 200),
        ("admin", 200, 403),
        ("writer", 403, 403),
        ("reader", 403, 403),
        ("robot", 403, 403),
        ("anonymous", 401, 401),
        ("revoked", 401, 401),
        ("expired", 401, 401),
        ("registry_only", 403, 403),
        ("outsider", 404, 404),
        ("staff", 404, 404),
    ],
)
def test_subscription_access_matrix_and_nothing_changed_on_denial(request, free, who, get, change):
    api = caller(request, free, who)
    before = state()
    response = api.get(SUB)
    assert response.status_code == get, response.content
    for send in (lambda: put(api, {"plan": "pro"}, **ANY), lambda: api.patch(SUB, {"plan": "pro"}, **ANY)):
        response = send()
        if change == 200:
            assert response.status_code == 200 and response.json()["plan"]["code"] == "pro"
        else:
            assert_problem(response, change)
            assert state() == before


# -- subscription: change -----------------------------------------------------------


def test_changing_the_plan_writes_its_limits_and_audits(free, api_write):
    response = put(api_write, {"plan": "team"}, **etag(api_write))
    assert response.status_code == 200
    body = response.json()
    assert body["plan"]["code"] == "team" and body["limits"]["members_limit"] is None
    assert response["ETag"] == api_write.get(SUB)["ETag"]  # the write's ETag is the new GET's
    tenant = Tenant.objects.get(pk=free.pk)
    assert tenant.storage_quota_bytes == 500 * 10**9 and tenant.robots_limit == 100
    event = AuditEvent.objects.filter(action="subscription.plan").get()
    assert event.detail == {"plan": "team", "previous": "free"}


def test_if_match_is_required_and_a_stale_one_refused(free, api_write):
    before = state()
    assert_problem(api_write.patch(SUB, {"plan": "pro"}), 428)
    stale = etag(api_write)
    assert api_write.patch(SUB, {"plan": "pro"}, **etag(api_write)).status_code == 200
    after = state()
    assert after != before
    assert_problem(api_write.patch(SUB, {"plan": "team"}, **stale), 412)
    assert_problem(api_write.patch(SUB, {"plan": "team"}, HTTP_IF_MATCH='W/"x"'), 412)
    assert state() == after


def test_a_downgrade_past_the_lower_limits_is_allowed_and_deletes_nothing(acme, api_write):
    subscription_start(tenant=acme, plan_code="pro")
    for name in ("a", "b", "c"):
        Repository.objects.create(tenant=acme, name=name)
    assert api_write.patch(SUB, {"plan": "free"}, **etag(api_write)).status_code == 200
    assert Repository.objects.filter(tenant=acme).count() == 3
    assert Tenant.objects.get(pk=acme.pk).private_repositories_limit == 1


def test_a_tenant_without_subscription_starts_one(acme, api_write):
    response = put(api_write, {"plan": "pro"}, **etag(api_write))
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert Subscription.objects.get(tenant=acme).plan.code == "pro"


def test_the_same_plan_changes_and_records_nothing(free, api_write):
    before = state()
    response = api_write.patch(SUB, {"plan": "free"}, **etag(api_write))
    assert response.status_code == 200 and state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "plan"), ({"plan": "nope"}, "plan"), ({"plan": ""}, "plan"), ({"plan": "x" * 33}, "plan"), ({"plan": None}, "plan")],
)
def test_bad_bodies_are_400_naming_the_field_and_change_nothing(free, api_write, body, field):
    before = state()
    problem = assert_problem(api_write.patch(SUB, body, **ANY), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert state() == before


def test_an_inactive_plan_takes_no_new_subscriber(free, api_write):
    Plan.objects.filter(code="team").update(is_active=False)
    before = state()
    problem = assert_problem(api_write.patch(SUB, {"plan": "team"}, **ANY), 400)
    assert "takes no new subscribers" in problem["detail"]
    assert state() == before


# -- billing usage --------------------------------------------------------------------


def _month(offset: int = 0) -> datetime:
    start = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(-offset):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def test_usage_of_this_month_and_a_past_one_with_the_limits(free, other_tenant, api_read):
    this, last = _month(), _month(-1)
    UsageRecord.objects.create(
        tenant=free, repository="app", hour=this, pulls=3, egress_proxied_bytes=100, egress_redirect_bytes=50
    )
    UsageRecord.objects.create(
        tenant=free, repository=TENANT_TOTAL, hour=this, storage_byte_hours=2 * 10**9, storage_sampled_at=this
    )
    UsageRecord.objects.create(tenant=free, repository="app", hour=last, pulls=7, egress_proxied_bytes=1000)
    UsageRecord.objects.create(tenant=other_tenant, repository="app", hour=this, pulls=99, egress_proxied_bytes=99)
    body = api_read.get(USAGE).json()
    assert body["period"] == f"{this:%Y-%m}" and datetime.fromisoformat(body["start"]) == this
    assert (body["pulls"], body["egress_bytes"], body["egress_redirect_bytes"]) == (3, 150, 50)
    assert body["storage_gb_hours"] == "2.000000000" and body["hours_sampled"] == 1
    assert [r["repository"] for r in body["repositories"]] == ["app"]
    limits = {entry["key"]: entry for entry in body["limits"]}
    assert limits["egress"] == {"key": "egress", "used": 150, "limit": 10 * 10**9, "unit": "bytes"}
    assert limits["members"] == {"key": "members", "used": 1, "limit": 3, "unit": "count"}
    assert limits["pulls"]["limit"] == 200 and limits["pulls"]["used"] == 0
    past = api_read.get(USAGE, period=f"{last:%Y-%m}").json()
    assert (past["pulls"], past["egress_bytes"]) == (7, 1000)
    assert datetime.fromisoformat(past["end"]) == this  # the whole past month
    assert {e["key"]: e for e in past["limits"]}["egress"]["used"] == 150  # where it stands now: this month's egress


@pytest.mark.parametrize("period", ["2026", "2026-13", "2026-00", "26-01", "2026-1", "abcd-ef", "1999-12", "9999-01"])
def test_a_bad_or_future_period_is_400(free, api_read, period):
    problem = assert_problem(api_read.get(USAGE, period=period), 400)
    assert [e["field"] for e in problem["errors"]] == ["period"]


@pytest.mark.parametrize(("who", "status"), [*DENIED, ("reader", 403), ("writer", 403)])
def test_usage_denied_callers_see_nothing_and_change_nothing(request, free, who, status):
    api = caller(request, free, who)
    before = state()
    body = assert_problem(api.get(USAGE), status)
    assert "limits" not in body
    assert state() == before


@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_read_usage(free, role):
    assert caller(None, free, role, ["api:read"]).get(USAGE).status_code == 200


def test_usage_and_subscription_cost_the_same_queries_whatever_the_repositories(free, api_read):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    this = _month()
    UsageRecord.objects.create(tenant=free, repository="r0", hour=this, pulls=1)
    api_read.get(USAGE)  # the token's first use records it
    with CaptureQueriesContext(connection) as one:
        assert api_read.get(USAGE).status_code == 200 and api_read.get(SUB).status_code == 200
    for i in range(1, 30):
        UsageRecord.objects.create(tenant=free, repository=f"r{i}", hour=this, pulls=1)
        Repository.objects.create(tenant=free, name=f"r{i}", visibility="public")
    with CaptureQueriesContext(connection) as many:
        body = api_read.get(USAGE).json()
        assert api_read.get(SUB).status_code == 200
    assert len(body["repositories"]) == 30 and body["pulls"] == 30
    assert len(many.captured_queries) == len(one.captured_queries)


@pytest.mark.parametrize("provider", ["manual", "stripe"])
def test_with_a_payment_provider_the_plan_changes_only_through_it(free, api_write, settings, provider):
    """Decision 0050: an owner's PUT/PATCH would be a plan without paying for it; 409, nothing changed, reads still work."""
    settings.GATEWAY_BILLING_PROVIDER = provider
    before = state()
    for response in (api_write.patch(SUB, {"plan": "team"}, **etag(api_write)), put(api_write, {"plan": "team"}, **ANY)):
        problem = assert_problem(response, 409)
        assert f"This gateway takes payments ({provider})" in problem["detail"]
    assert state() == before
