"""The billing page (/orgs/<slug>/billing/, decision 0046): the plan, usage against every limit, the plan change (owners)."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, RobotAccount, Tenant
from accounts.services import robot_create
from billing.models import StorageDrift, Subscription, UsageRecord
from billing.selectors import subscription_get
from billing.services import subscription_start
from gateway.registry.models import Repository
from gateway.registry.pull_limits import KEY_PREFIX, pull_window_take
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.dashboard.html import with_class
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/billing/"
PLAN = "/orgs/acme/billing/plans/{}/"


@pytest.fixture
def free(tenant):
    subscription_start(tenant=tenant, plan_code="free")
    return Tenant.objects.get(pk=tenant.pk)


@pytest.fixture
def pulls_key(tenant, redis_client):
    key = f"{KEY_PREFIX}{tenant.pk}:tenant"
    redis_client.delete(key)
    yield key
    redis_client.delete(key)


def _state() -> dict:
    """Everything a billing POST could change: subscriptions, the tenants' limits, the audit log."""
    return {
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
        "tenants": list(Tenant.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
    }


def _text(response) -> str:
    """The page's text: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


@pytest.mark.parametrize("caller", CALLERS)
def test_page_access_owners_and_admins_only(as_caller, free, caller):
    response = as_caller(caller).get(URL)
    if caller in allowed("admin"):
        assert response.status_code == 200
        text = _text(response)
        assert "Free" in text and "0.00 USD per month" in text
        # Only owners get the plans to change to; admins read.
        assert (b'id="billing-plans"' in response.content) == (caller == "owner")
        assert ("Only owners of acme change its plan." in text) == (caller == "admin")
    else:
        assert_denied(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_plan_change_is_for_owners_only_and_denial_changes_nothing(as_caller, free, caller):
    before = _state()
    client = as_caller(caller)
    get = client.get(PLAN.format("pro"))
    post = client.post(PLAN.format("pro"), {"current": "free"})
    if caller == "owner":
        assert get.status_code == 200 and post.status_code == 302 and post["Location"] == URL
        assert subscription_get(tenant=free).plan.code == "pro"
        assert Tenant.objects.get(pk=free.pk).storage_quota_bytes == 50 * 10**9  # the plan's limits were written
        event = AuditEvent.objects.filter(action="subscription.plan").get()
        assert event.actor == "owner" and event.detail == {"plan": "pro", "previous": "free"}
    else:
        assert_denied(get, caller)
        assert_denied(post, caller)
        assert _state() == before


def test_nav_shows_billing_to_admins_and_owners(as_caller, free):
    assert b'href="/orgs/acme/billing/"' in as_caller("admin").get("/orgs/acme/usage/").content
    assert b'href="/orgs/acme/billing/"' not in as_caller("writer").get("/orgs/acme/usage/").content


def test_usage_against_every_limit_with_warnings_at_80_and_100_percent(as_caller, users, free, pulls_key):
    # Free: 1 private repository, 3 members, 1 robot, 200 pulls / 6 h, 2 GB, 10 GB egress a month.
    Repository.objects.create(tenant=free, name="app")  # private: 1 of 1 → full
    robot_create(tenant=free, name="ci", scopes=["pull"])  # 1 of 1 → full
    now_ms = int(time.time() * 1000)
    for i in range(170):  # 170 of 200 → 85 %: warn
        pull_window_take(key=pulls_key, limit=200, counted=True, now_ms=now_ms - i)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    UsageRecord.objects.create(tenant=free, repository="app", hour=hour, egress_proxied_bytes=10**9, egress_redirect_bytes=10**9)
    response = as_caller("owner").get(URL)
    bars = {m["aria-label"]: m["class"] for m in with_class(response.content, "quota-bar")}
    assert bars == {
        "0 % of the storage limit used": "quota-bar quota-ok",
        "100 % of the private repositories limit used": "quota-bar quota-full",
        "133 % of the members limit used": "quota-bar quota-full",  # owner, reader, writer, admin: past a limit of 3
        "100 % of the robot accounts limit used": "quota-bar quota-full",
        "85 % of the authenticated pulls in the last 6 hours limit used": "quota-bar quota-warn",
        "20 % of the egress this month limit used": "quota-bar quota-ok",
    }
    text = _text(response)
    assert "170 of 200 (85 %)" in text and "2 GB of 10 GB (20 %)" in text and "4 of 3 (133 %)" in text
    assert "Over 80 % of the limit is used." in text
    assert "The limit is reached: no more can be added." in text


def test_unlimited_limits_have_no_bar_and_pulls_are_not_counted(as_caller, tenant):
    make_tenant("initech")  # another tenant's figures never count here
    # No subscription (self-hosted): the tenant has no limits at all.
    response = as_caller("owner").get(URL)
    text = _text(response)
    assert not with_class(response.content, "quota-bar")
    assert "acme has no plan" in text and "Unlimited: pulls are not counted." in text
    assert "Members 4, unlimited." in text and "Robot accounts 0, unlimited." in text  # every role of acme, no outsider


def test_plans_listed_for_the_owner_are_the_open_ones_but_the_current(as_caller, free):
    from billing.models import Plan

    Plan.objects.create(code="legacy", name="Legacy", is_active=False)
    page = as_caller("owner").get(URL).content
    assert b"/orgs/acme/billing/plans/pro/" in page and b"/orgs/acme/billing/plans/team/" in page
    assert b"/orgs/acme/billing/plans/free/" not in page and b"/plans/legacy/" not in page
    assert as_caller("owner").get(PLAN.format("legacy")).status_code == 404
    assert as_caller("owner").get(PLAN.format("nope")).status_code == 404


def test_a_downgrade_is_allowed_and_says_what_stops_working(as_caller, users, tenant):
    subscription_start(tenant=tenant, plan_code="pro")
    for name in ("a", "b"):
        Repository.objects.create(tenant=tenant, name=name)
    client = as_caller("owner")
    text = _text(client.get(PLAN.format("free")))
    assert "acme already uses as much as Free allows or more. Nothing is deleted" in text
    assert "no repository can be created or made private until fewer than 1 are private" in text
    assert "no member can be added or invited until there are fewer than 3" in text
    assert "robot account can be created" not in text  # 0 robots of 1: not reached
    response = client.post(PLAN.format("free"), {"current": "pro"}, follow=True)
    assert "acme is now on the Free plan." in _text(response)
    assert Repository.objects.filter(tenant=tenant).count() == 2  # nothing deleted
    assert Tenant.objects.get(pk=tenant.pk).private_repositories_limit == 1


def test_a_stale_confirmation_changes_nothing(as_caller, free):
    client = as_caller("owner")
    client.post(PLAN.format("team"), {"current": "free"})  # another owner moved to team meanwhile
    before = _state()
    response = client.post(PLAN.format("pro"), {"current": "free"})
    assert response.status_code == 400
    assert "The plan changed since this page was shown: nothing was changed." in _text(response)
    assert 'name="current" value="team"' in response.content.decode()  # the page now confirms against team
    assert _state() == before


@pytest.mark.parametrize("data", [{}, {"current": "x" * 33}, {"current": "pro"}])
def test_bad_input_changes_nothing(as_caller, free, data):
    before = _state()
    response = as_caller("owner").post(PLAN.format("team"), data)
    assert response.status_code == 400
    assert _state() == before


def test_staff_members_see_the_latest_storage_drift(as_caller, users, tenant):
    from accounts.services import membership_set

    subscription_start(tenant=tenant, plan_code="pro")  # room for one more member
    free = tenant
    figures = dict(metered_objects=3, actual_objects=4, missing_objects=0, missing_bytes=0, unexpected_objects=1)
    figures |= dict(unexpected_bytes=500, skipped_objects=0, skipped_bytes=0)
    today = datetime.now(UTC).date()
    StorageDrift.objects.create(tenant=free, day=today, metered_bytes=1000, actual_bytes=1500, difference_bytes=500, **figures)
    StorageDrift.objects.create(
        tenant=free, day=date(today.year - 1, 1, 1), metered_bytes=1, actual_bytes=10**9, difference_bytes=10**9, **figures
    )
    assert b"Storage drift" not in as_caller("owner").get(URL).content
    assert as_caller("staff").get(URL).status_code == 404  # staff who are no member: the staff console, not this page
    membership_set(tenant=free, user=users["staff"], role="admin")
    text = _text(as_caller("staff").get(URL))
    assert "Storage drift (staff)" in text and f"On {today:%Y-%m-%d} the bucket held 1.5 kB in 4 objects" in text
    assert "a difference of 500 bytes, 0 missing objects, 1 unexpected" in text


def test_queries_are_constant_over_repositories_robots_and_plans(as_caller, free):
    from billing.models import Plan

    client = as_caller("owner")
    client.get(URL)  # the session's first request loads more (the user, the session)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for i in range(20):
        Repository.objects.create(tenant=free, name=f"r{i}")
        Plan.objects.create(code=f"p{i}", name=f"P{i}", monthly_price_minor=100 + i)
    RobotAccount.objects.filter(tenant=free).delete()
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
