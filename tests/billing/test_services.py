"""Subscriptions and plans (docs/decisions/0039): every change writes the tenant's limits in its transaction, audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.limits import TenantLimits, tenant_limits_get
from accounts.models import AuditEvent, Tenant
from accounts.tenant_admin import UNPAID_REASON, tenant_suspend
from billing.models import Plan, Subscription
from billing.selectors import subscription_get
from billing.services import (
    _month_later,
    plan_update,
    subscription_change_plan,
    subscription_start,
    subscription_status_set,
    tenant_open,
)
from gateway.core.errors import Conflict, NotFound, ServiceUnavailable, ValidationError
from gateway.registry import access
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db


def actions(tenant: Tenant, prefix: str) -> list[tuple[str, dict]]:
    return [(e.action, e.detail) for e in AuditEvent.objects.filter(tenant=tenant, action__startswith=prefix).order_by("pk")]


def test_starting_a_subscription_writes_the_plan_limits_and_audits(plans):
    tenant = make_tenant("acme")
    subscription = subscription_start(tenant=tenant, plan_code="free", actor="alice")
    assert subscription.plan.code == "free" and subscription.status == Subscription.Status.ACTIVE
    assert subscription.current_period_end == _month_later(subscription.current_period_start)
    assert tenant_limits_get(tenant=tenant) == plans["free"].limits()
    assert actions(tenant, "subscription.") == [("subscription.start", {"plan": "free", "status": "active"})]
    with pytest.raises(Conflict, match="already has a subscription"):
        subscription_start(tenant=tenant, plan_code="pro")
    assert subscription_get(tenant=tenant).plan.code == "free"


@pytest.mark.parametrize(
    "code,status,error,message",
    [
        ("gold", "active", NotFound, "No plan 'gold'"),
        ("free", "paid", ValidationError, "Unknown status 'paid'"),
    ],
)
def test_a_bad_plan_or_status_starts_nothing(plans, code, status, error, message):
    tenant = make_tenant("acme")
    with pytest.raises(error, match=message):
        subscription_start(tenant=tenant, plan_code=code, status=status)
    assert not Subscription.objects.exists() and tenant_limits_get(tenant=tenant) == TenantLimits()


def test_an_inactive_plan_takes_no_new_subscribers_but_keeps_its_own(plans):
    kept, fresh = make_tenant("acme"), make_tenant("beta")
    subscription_start(tenant=kept, plan_code="pro")
    Plan.objects.filter(code="pro").update(is_active=False)
    with pytest.raises(ValidationError, match="takes no new subscribers"):
        subscription_start(tenant=fresh, plan_code="pro")
    with pytest.raises(ValidationError, match="takes no new subscribers"):
        subscription_change_plan(tenant=fresh, plan_code="pro", actor="alice")
    assert subscription_get(tenant=kept).plan.code == "pro" and subscription_get(tenant=fresh) is None


def test_changing_plan_rewrites_every_limit_and_is_audited_once(plans):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="free")
    subscription_change_plan(tenant=tenant, plan_code="team", actor="alice")
    assert tenant_limits_get(tenant=tenant) == plans["team"].limits()
    subscription_change_plan(tenant=tenant, plan_code="team", actor="alice")  # the same plan: nothing to do
    assert actions(tenant, "subscription.plan") == [("subscription.plan", {"plan": "team", "previous": "free"})]
    assert AuditEvent.objects.get(tenant=tenant, action="subscription.plan").actor == "alice"


def test_changing_the_plan_of_a_tenant_without_a_subscription_starts_one(plans):
    tenant = make_tenant("acme")
    subscription_change_plan(tenant=tenant, plan_code="pro", actor="manage.py")
    assert subscription_get(tenant=tenant).plan.code == "pro"
    assert tenant_limits_get(tenant=tenant) == plans["pro"].limits()


def test_a_failed_change_leaves_plan_and_limits_as_they_were(plans):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="free")
    with pytest.raises(NotFound):
        subscription_change_plan(tenant=tenant, plan_code="nope", actor="alice")
    assert subscription_get(tenant=tenant).plan.code == "free"
    assert tenant_limits_get(tenant=tenant) == plans["free"].limits()


def test_editing_a_plan_reapplies_its_limits_to_every_subscriber_and_no_one_else(plans):
    a, b, other, unsubscribed = make_tenant("acme"), make_tenant("beta"), make_tenant("gamma"), make_tenant("delta")
    for t in (a, b):
        subscription_start(tenant=t, plan_code="free")
    subscription_start(tenant=other, plan_code="pro")
    plan_update(code="free", changes={"robots_limit": 5, "storage_quota_bytes": None, "name": "Hobby"}, actor="ops")
    for t in (a, b):
        limits = tenant_limits_get(tenant=t)
        assert limits.robots_limit == 5 and limits.storage_quota_bytes is None and limits.members_limit == 3
    assert tenant_limits_get(tenant=other) == plans["pro"].limits()
    assert tenant_limits_get(tenant=unsubscribed) == TenantLimits()
    event = AuditEvent.objects.get(action="plan.update")
    assert event.target == "free" and event.actor == "ops" and event.detail["tenants"] == 2
    assert Plan.objects.get(code="free").name == "Hobby"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"code": "gratis"}, "Cannot change code"),
        ({"robots_limit": -1}, "robots_limit must be a whole number"),
        ({"monthly_price_minor": None}, "monthly_price_minor must be a whole number"),
        ({"storage_quota_bytes": "lots"}, "storage_quota_bytes must be a whole number"),
        ({"currency": "dollars"}, "three-letter"),
    ],
)
def test_a_bad_plan_edit_changes_nothing(plans, changes, message):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="free")
    with pytest.raises(ValidationError, match=message):
        plan_update(code="free", changes=changes, actor="ops")
    assert Plan.objects.get(code="free").limits() == plans["free"].limits()
    assert tenant_limits_get(tenant=tenant) == plans["free"].limits()
    assert not AuditEvent.objects.filter(action="plan.update").exists()


def test_editing_an_unknown_plan_is_not_found(plans):
    with pytest.raises(NotFound):
        plan_update(code="gold", changes={"name": "Gold"}, actor="ops")


def _owner_reg(tenant: Tenant) -> Reg:
    owner = tenant.memberships.get().user
    return Reg(Client(), basic(owner.username, make_token(owner)))


def test_suspended_for_non_payment_pushes_are_refused_saying_why_and_pulls_go_on(plans):
    tenant = make_tenant("acme", owner=UserFactory(username="owner"))
    subscription_start(tenant=tenant, plan_code="pro")
    reg = _owner_reg(tenant)
    reg.push_image("app", "v1", [b"layer"])
    subscription_status_set(tenant=tenant, status="suspended", actor="billing")
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED and tenant.suspension_reason == UNPAID_REASON
    access.caches_clear()
    r = reg.post("/v2/acme/app/blobs/uploads/")
    assert r.status_code == 403
    message = r.json()["errors"][0]["message"]
    assert "unpaid" in message and "pulls still work" in message and "/orgs/acme/billing/" in message
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 200
    # Paying (status active) lifts it; a second "active" changes nothing.
    subscription_status_set(tenant=tenant, status="active", actor="billing")
    subscription_status_set(tenant=tenant, status="active", actor="billing")
    access.caches_clear()
    assert reg.post("/v2/acme/app/blobs/uploads/").status_code == 202
    assert [a for a, _ in actions(tenant, "tenant.")] == ["tenant.suspend", "tenant.reactivate"]
    assert actions(tenant, "subscription.status") == [
        ("subscription.status", {"status": "suspended", "previous": "active"}),
        ("subscription.status", {"status": "active", "previous": "suspended"}),
    ]


def test_billing_never_lifts_a_suspension_an_operator_made(plans):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="pro")
    tenant_suspend(tenant=tenant, reason="abuse report 42", actor="ops")
    subscription_status_set(tenant=tenant, status="active", actor="billing")  # already active: nothing
    subscription_status_set(tenant=tenant, status="past_due", actor="billing")
    subscription_status_set(tenant=tenant, status="active", actor="billing")
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED and tenant.suspension_reason == "abuse report 42"


def test_status_of_a_tenant_without_a_subscription_is_not_found(plans):
    with pytest.raises(NotFound):
        subscription_status_set(tenant=make_tenant("acme"), status="suspended", actor="billing")
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.ACTIVE


def test_a_new_tenant_gets_the_default_plan_in_the_same_transaction(plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "free"
    tenant = tenant_open(slug="acme", owner=UserFactory(), actor="alice")
    assert subscription_get(tenant=tenant).plan.code == "free"
    assert (
        tenant_limits_get(tenant=tenant) == plans["free"].limits()
        and tenant.storage_quota_bytes == plans["free"].storage_quota_bytes
    )


def test_without_a_default_plan_a_new_tenant_has_no_subscription_and_no_limits(plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = ""
    tenant = tenant_open(slug="acme", owner=UserFactory())
    assert subscription_get(tenant=tenant) is None and tenant_limits_get(tenant=tenant) == TenantLimits()


def test_a_default_plan_that_does_not_exist_creates_no_tenant(plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "gold"
    with pytest.raises(ServiceUnavailable, match="GATEWAY_BILLING_DEFAULT_PLAN"):
        tenant_open(slug="acme", owner=UserFactory())
    assert not Tenant.objects.filter(slug="acme").exists() and not Subscription.objects.exists()


@pytest.mark.parametrize(
    "start,end",
    [
        (datetime(2026, 1, 31, 12, tzinfo=UTC), datetime(2026, 2, 28, 12, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 12, 15, 8, 30, tzinfo=UTC), datetime(2027, 1, 15, 8, 30, tzinfo=UTC)),
    ],
)
def test_a_period_is_one_calendar_month(start, end):
    assert _month_later(start) == end
