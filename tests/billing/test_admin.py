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


def test_the_meters_rows_are_read_only_in_the_admin(staff_client):
    from datetime import UTC, date, datetime

    from billing.models import StorageDrift, UsageRecord

    tenant = make_tenant("acme")
    record = UsageRecord.objects.create(tenant=tenant, repository="app", hour=datetime(2026, 12, 1, 16, tzinfo=UTC), pulls=3)
    drift = StorageDrift.objects.create(
        tenant=tenant, day=date(2026, 12, 1), metered_bytes=10, actual_bytes=12, difference_bytes=2, metered_objects=1,
        actual_objects=2, missing_objects=0, missing_bytes=0, unexpected_objects=1, unexpected_bytes=2, skipped_objects=0,
        skipped_bytes=0,
    )  # fmt: skip
    for model, row in (("usagerecord", record), ("storagedrift", drift)):
        listing = staff_client.get(f"/admin/billing/{model}/")
        assert listing.status_code == 200 and b"acme" in listing.content
        assert staff_client.get(f"/admin/billing/{model}/add/").status_code == 403
        assert staff_client.post(f"/admin/billing/{model}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.get(pk=record.pk).pulls == 3 and StorageDrift.objects.filter(pk=drift.pk).exists()
    outsider = Client()
    outsider.force_login(UserFactory(username="mallory"))
    assert outsider.get("/admin/billing/usagerecord/").status_code == 302  # to the admin's login: not staff


def test_staff_give_a_plan_its_stripe_price_in_the_admin_and_read_payments_there(plans, staff_client):
    from billing.models import ManualPayment, ProviderEvent
    from billing.payments.manual import manual_payment_request

    pro = plans["pro"]
    r = staff_client.post(f"/admin/billing/plan/{pro.pk}/change/", _form(pro, stripe_price_id="price_pro_2026"))
    assert r.status_code == 302, r.content
    assert Plan.objects.get(code="pro").stripe_price_id == "price_pro_2026"
    assert AuditEvent.objects.get(action="plan.update").detail["changes"] == {"stripe_price_id": "price_pro_2026"}
    team = plans["team"]
    r = staff_client.post(f"/admin/billing/plan/{team.pk}/change/", _form(team, stripe_price_id="price_pro_2026"))
    assert r.status_code == 200 and Plan.objects.get(code="team").stripe_price_id == ""  # the form says it is taken
    manual_payment_request(tenant=make_tenant("acme"), plan_code="pro", actor="alice")
    ProviderEvent.objects.create(
        provider="stripe", event_id="evt_1", event_type="invoice.paid", occurred_at="2026-01-01T00:00Z", outcome="ignored"
    )
    for model in ("providerevent", "manualpayment"):
        assert staff_client.get(f"/admin/billing/{model}/").status_code == 200
        assert staff_client.get(f"/admin/billing/{model}/add/").status_code == 403
    payment = ManualPayment.objects.get()
    assert staff_client.post(f"/admin/billing/manualpayment/{payment.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ManualPayment.objects.filter(pk=payment.pk, status="requested").exists()


def test_invoices_and_plan_intervals_are_read_only_in_the_admin(plans, staff_client):
    from billing.invoicing import invoice_issue
    from billing.models import Invoice, SubscriptionPlanInterval
    from tests.billing.invoicing import at, lines_of, plan_history, utc

    tenant = make_tenant("acme")
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1, 2)):
        invoice = invoice_issue(tenant=tenant, period_start=utc(2026, 3, 1))
    interval = SubscriptionPlanInterval.objects.get(tenant=tenant)
    page = staff_client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200 and b"WHARF-000001" in page.content and b"Pro plan, March 2026" in page.content
    for model, row in (("invoice", invoice), ("subscriptionplaninterval", interval)):
        listing = staff_client.get(f"/admin/billing/{model}/")
        assert listing.status_code == 200 and b"acme" in listing.content
        assert staff_client.get(f"/admin/billing/{model}/add/").status_code == 403
        assert staff_client.post(f"/admin/billing/{model}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    staff_client.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"status": "void", "total_minor": "0"})
    assert Invoice.objects.filter(pk=invoice.pk, status="open", total_minor=900).exists()
    assert lines_of(invoice) == [("base", "1.000000", "month", 900, 900)]
    outsider = Client()
    outsider.force_login(UserFactory(username="mallory"))
    for client in (outsider, Client()):
        response = client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
