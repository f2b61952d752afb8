"""manage.py billing_plans (list, set, status) and create_tenant with a default plan."""

from __future__ import annotations

import json

import pytest

from accounts.limits import tenant_limits_get
from accounts.models import AuditEvent, Tenant
from billing.selectors import subscription_get
from tests.factories import make_tenant
from tests.helpers import command

pytestmark = pytest.mark.django_db


def test_list_prints_every_plan_with_price_and_limits(plans):
    r = command("billing_plans", "list")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["plans"]
    assert [p["code"] for p in listed] == ["free", "pro", "team"]
    free = listed[0]
    assert free["monthly_price_minor"] == 0 and free["currency"] == "USD" and free["active"] is True
    assert free["limits"] == plans["free"].limits().as_fields()
    assert listed[1]["limits"]["private_repositories_limit"] is None  # null = unlimited


def test_set_moves_a_tenant_to_a_plan_and_writes_its_limits(plans):
    tenant = make_tenant("acme")
    r = command("billing_plans", "set", "acme", "pro")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["subscription"]
    assert out["tenant"] == "acme" and out["plan"] == "pro" and out["status"] == "active"
    assert tenant_limits_get(tenant=tenant) == plans["pro"].limits()
    assert AuditEvent.objects.filter(tenant=tenant, action="subscription.start", actor="manage.py").exists()
    assert command("billing_plans", "set", "acme", "team").returncode == 0
    assert subscription_get(tenant=tenant).plan.code == "team"


@pytest.mark.parametrize(
    "args,message",
    [
        (("set", "nobody", "pro"), "No tenant 'nobody'"),
        (("set", "acme", "gold"), "No plan 'gold'"),
        (("status", "acme", "suspended"), "has no subscription"),
    ],
)
def test_bad_arguments_are_a_clear_error_and_change_nothing(plans, args, message):
    tenant = make_tenant("acme")
    r = command("billing_plans", *args)
    assert r.returncode != 0 and message in r.stderr
    assert subscription_get(tenant=tenant) is None and Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.ACTIVE


def test_status_suspends_for_non_payment_and_active_reactivates(plans):
    make_tenant("acme")
    assert command("billing_plans", "set", "acme", "free").returncode == 0
    r = command("billing_plans", "status", "acme", "suspended")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["subscription"]["status"] == "suspended"
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.SUSPENDED
    # A suspended tenant is still found, so paying can lift it.
    assert command("billing_plans", "status", "acme", "active").returncode == 0
    assert Tenant.objects.get(slug="acme").status == Tenant.Status.ACTIVE


def test_create_tenant_subscribes_to_the_default_plan(plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "free"
    r = command("create_tenant", "acme", "--owner", "alice")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenant"]["plan"] == "free"
    assert tenant_limits_get(tenant=Tenant.objects.get(slug="acme")) == plans["free"].limits()


def test_create_tenant_with_a_missing_default_plan_creates_neither_tenant_nor_owner(plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "gold"
    r = command("create_tenant", "acme", "--owner", "alice")
    assert r.returncode != 0 and "GATEWAY_BILLING_DEFAULT_PLAN" in r.stderr
    assert not Tenant.objects.exists()
    from accounts.models import User

    assert not User.objects.filter(username="alice").exists()
