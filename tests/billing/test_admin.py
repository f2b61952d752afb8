"""Staff edit plans in Django's admin: saving a plan re-applies its limits to its subscribers; subscriptions are read-only."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.limits import tenant_limits_get
from accounts.models import AuditEvent
from billing.models import Plan, Subscription
from billing.services import subscription_start
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db


def _form(plan: Plan, **changes) -> dict:
    fields = [
        "name", "monthly_price_minor", "currency", "storage_quota_bytes", "private_repositories_limit", "members_limit",
        "robots_limit", "pulls_per_window_authenticated", "pulls_per_window_anonymous", "egress_bytes_per_month_limit",
        "storage_overage_minor_per_gb", "egress_overage_minor_per_gb",
    ]  # fmt: skip
    data = {f: "" if getattr(plan, f) is None else str(getattr(plan, f)) for f in fields}
    data["is_active"] = "on" if plan.is_active else ""
    data.update({k: str(v) for k, v in changes.items()})
    return data


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def test_saving_a_plan_in_the_admin_reapplies_its_limits(plans, staff_client):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="free")
    free = plans["free"]
    r = staff_client.post(f"/admin/billing/plan/{free.pk}/change/", _form(free, robots_limit=7, code="gratis"))
    assert r.status_code == 302, r.content.decode()[:2000]
    assert tenant_limits_get(tenant=tenant).robots_limit == 7
    assert Plan.objects.get(pk=free.pk).code == "free"  # the code is read-only
    assert AuditEvent.objects.get(action="plan.update").actor == "ops"


def test_subscriptions_are_read_only_in_the_admin(plans, staff_client):
    subscription = subscription_start(tenant=make_tenant("acme"), plan_code="free")
    page = staff_client.get(f"/admin/billing/subscription/{subscription.pk}/change/")
    assert page.status_code == 200
    pro = plans["pro"]
    staff_client.post(f"/admin/billing/subscription/{subscription.pk}/change/", {"plan": pro.pk, "status": "active"})
    assert Subscription.objects.get(pk=subscription.pk).plan.code == "free"


def test_the_admin_is_for_staff_only(plans):
    client = Client()
    client.force_login(UserFactory(username="alice"))
    free = plans["free"]
    r = client.post(f"/admin/billing/plan/{free.pk}/change/", _form(free, robots_limit=7))
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    assert Plan.objects.get(pk=free.pk).robots_limit == 1
