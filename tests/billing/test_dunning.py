"""Dunning as a timeline on a frozen clock (docs/decisions/0045): a failed payment → past_due → still pushing on day 6
→ suspended on day 7 (pushes DENIED saying unpaid, pulls go on) → paid → active, pushing again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from accounts.models import AuditEvent, Tenant
from billing.models import Subscription
from billing.selectors import subscription_get
from billing.services import subscription_start, subscription_status_set
from billing.tasks import dunning_sweep_task
from gateway.registry import access
from gateway.schedule import BEAT_SCHEDULE
from tests.billing.stripe_standin import checkout_session, event, invoice_object
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _real_clock():
    """The registry's requests to S3 are signed with the clock, and S3 refuses a skewed one: run them on the real time."""
    return time_machine.travel(time_machine.escape_hatch.time.time(), tick=True)


def _push(reg: Reg):
    access.caches_clear()
    with _real_clock():
        return reg.post("/v2/acme/app/blobs/uploads/")


def _pull(reg: Reg):
    access.caches_clear()
    with _real_clock():
        return reg.get("/v2/acme/app/manifests/v1")


def _status(tenant: Tenant) -> tuple[str, str]:
    tenant.refresh_from_db()
    return subscription_get(tenant=tenant).status, tenant.status


def test_the_dunning_timeline(deliver, plans):
    with time_machine.travel(T0, tick=False) as clock:
        tenant = make_tenant("acme", owner=UserFactory(username="owner"))
        reg = Reg(Client(), basic("owner", make_token(tenant.memberships.get().user)))
        deliver(event("checkout.session.completed", checkout_session(
            tenant_id=tenant.pk, plan="pro", customer="cus_1", subscription="sub_1")))  # fmt: skip
        with _real_clock():
            reg.push_image("app", "v1", [b"layer one"])

        clock.shift(DAY)  # the renewal fails
        failed_at = datetime.now(UTC)
        invoice = invoice_object(sub_id="sub_1", customer="cus_1", paid=False, invoice_id="in_2")
        assert deliver(event("invoice.payment_failed", invoice)).json()["outcome"] == "applied"
        assert _status(tenant) == ("past_due", "active")
        assert subscription_get(tenant=tenant).past_due_since == failed_at

        clock.shift(6 * DAY)  # day 6 of the grace period: still pushing
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}
        assert _status(tenant) == ("past_due", "active")
        assert _push(reg).status_code == 202
        # Stripe retries and fails again: the clock does not restart.
        deliver(event("invoice.payment_failed", invoice))
        assert subscription_get(tenant=tenant).past_due_since == failed_at

        clock.shift(DAY)  # day 7: suspended as unpaid
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 1}
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}  # a twin run changes nothing
        assert _status(tenant) == ("suspended", "suspended")
        r = _push(reg)
        assert r.status_code == 403
        error = r.json()["errors"][0]
        assert error["code"] == "DENIED" and "unpaid" in error["message"] and "/orgs/acme/billing/" in error["message"]
        assert _pull(reg).status_code == 200  # pulls go on

        clock.shift(timedelta(hours=5))  # the customer pays
        assert deliver(event("invoice.paid", {**invoice, "status": "paid"})).json()["outcome"] == "applied"
        assert _status(tenant) == ("active", "active")
        assert subscription_get(tenant=tenant).past_due_since is None
        assert _push(reg).status_code == 202
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}
    audit = list(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="subscription.status").values_list("detail", flat=True)
    )
    assert [d["status"] for d in audit] == ["past_due", "suspended", "active"]


def test_paying_during_the_grace_period_stops_the_clock(deliver, plans):
    with time_machine.travel(T0, tick=False) as clock:
        tenant = make_tenant("acme")
        subscription_start(tenant=tenant, plan_code="pro")
        subscription_status_set(tenant=tenant, status="past_due", actor="stripe")
        clock.shift(3 * DAY)
        subscription_status_set(tenant=tenant, status="active", actor="stripe")
        clock.shift(10 * DAY)
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}
        assert _status(tenant) == ("active", "active")


def test_the_grace_period_is_a_setting(plans, settings):
    settings.GATEWAY_BILLING_GRACE_DAYS = 2
    with time_machine.travel(T0, tick=False) as clock:
        tenant = make_tenant("acme")
        subscription_start(tenant=tenant, plan_code="pro")
        subscription_status_set(tenant=tenant, status="past_due", actor="stripe")
        clock.shift(2 * DAY - timedelta(seconds=1))
        assert dunning_sweep_task()["suspended"] == 0
        clock.shift(timedelta(seconds=1))
        assert dunning_sweep_task()["suspended"] == 1


def test_only_past_due_subscriptions_are_suspended(plans):
    with time_machine.travel(T0, tick=False) as clock:
        for slug, status in [("acme", "active"), ("beta", "canceled"), ("gamma", "trialing")]:
            subscription_start(tenant=make_tenant(slug), plan_code="pro", status=status)
        clock.shift(30 * DAY)
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}
    assert not Subscription.objects.filter(status="suspended").exists()
    assert set(Tenant.objects.values_list("status", flat=True)) == {"active"}


def test_the_sweep_runs_hourly_from_beat():
    entry = BEAT_SCHEDULE["billing-dunning-sweep"]
    assert entry["task"] == dunning_sweep_task.name == "billing.dunning.sweep"
    assert entry["options"]["expires"] < 3600
