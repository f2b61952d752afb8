"""Bank transfer (docs/decisions/0045): subscribing records a request with a reference; staff mark it paid (the service
and `manage.py billing_payments`), which activates or reactivates the tenant for one period of the plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.limits import TenantLimits, tenant_limits_get
from accounts.models import AuditEvent, Tenant
from billing import payments
from billing.models import ManualPayment
from billing.payments.base import WebhookRejected
from billing.payments.manual import ManualProvider, manual_payment_mark_paid
from billing.selectors import subscription_get
from billing.services import _month_later
from billing.tasks import dunning_sweep_task
from gateway.core.errors import NotFound, ValidationError
from tests.factories import make_tenant
from tests.helpers import command

pytestmark = pytest.mark.django_db
RETURN = "https://wharf.example/orgs/acme/billing/"
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def manual(settings, plans):
    settings.GATEWAY_BILLING_PROVIDER = "manual"
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "free"
    return plans


def _paid(slug: str, *extra: str) -> dict:
    result = command("billing_payments", "paid", slug, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["payment"]


def test_subscribing_records_one_request_with_a_reference_to_quote(manual):
    provider = payments.provider_get()
    assert isinstance(provider, ManualProvider) and not provider.has_portal
    tenant = make_tenant("acme")
    url = payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    request = ManualPayment.objects.get()
    assert url == f"{RETURN}?payment={request.reference}" and request.reference.startswith(f"WHARF-{tenant.pk}-")
    assert (request.plan.code, request.status, request.amount_minor, request.currency) == ("pro", "requested", 900, "USD")
    # Asking again (another plan) updates the one open request; nothing is paid or changed on the tenant yet.
    payments.checkout_start(tenant=tenant, plan_code="team", actor="alice", return_url=RETURN + "?x=1")
    request = ManualPayment.objects.get()
    assert (request.plan.code, request.amount_minor) == ("team", 4900)
    assert subscription_get(tenant=tenant) is None and tenant_limits_get(tenant=tenant) == TenantLimits()
    assert AuditEvent.objects.filter(tenant=tenant, action="billing.manual.request").count() == 2


def test_a_bad_plan_records_nothing(manual):
    with pytest.raises(NotFound):
        payments.checkout_start(tenant=make_tenant("acme"), plan_code="gold", actor="alice", return_url=RETURN)
    assert not ManualPayment.objects.exists()


def test_no_portal_and_no_webhooks(manual):
    tenant = make_tenant("acme")
    with pytest.raises(ValidationError, match="bank transfer"):
        payments.portal_open(tenant=tenant, return_url=RETURN)
    with pytest.raises(WebhookRejected):
        payments.provider_get().webhook_handle(body=b"{}", headers={})


def test_staff_mark_the_request_paid_and_the_tenant_gets_the_plan_for_a_period(manual):
    tenant = make_tenant("acme")
    payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    with time_machine.travel(T0, tick=False):
        out = _paid("acme", "--bank-reference", "SEPA 4711")
    request = ManualPayment.objects.get()
    assert out["reference"] == request.reference and out["status"] == "paid" and out["plan"] == "pro"
    assert (request.marked_by, request.bank_reference, request.paid_at) == ("manage.py", "SEPA 4711", T0)
    subscription = subscription_get(tenant=tenant)
    assert (subscription.plan.code, subscription.status, subscription.provider) == ("pro", "active", "manual")
    assert (subscription.current_period_start, subscription.current_period_end) == (T0, _month_later(T0))
    assert tenant_limits_get(tenant=tenant) == manual["pro"].limits()
    assert AuditEvent.objects.filter(tenant=tenant, action="billing.manual.paid", actor="manage.py").count() == 1
    listed = command("billing_payments", "requests")
    assert json.loads(listed.stdout) == {"requests": []}


def test_the_command_lists_open_requests_and_refuses_what_cannot_be_paid(manual):
    tenant = make_tenant("acme")
    make_tenant("beta")
    payments.checkout_start(tenant=tenant, plan_code="team", actor="alice", return_url=RETURN)
    (listed,) = json.loads(command("billing_payments", "requests").stdout)["requests"]
    assert (listed["tenant"], listed["plan"], listed["amount_minor"], listed["status"]) == ("acme", "team", 4900, "requested")
    nothing = command("billing_payments", "paid", "beta")
    assert nothing.returncode == 1 and "neither a payment request nor a subscription" in nothing.stderr
    unknown = command("billing_payments", "paid", "nope")
    assert unknown.returncode == 1 and "No tenant 'nope'" in unknown.stderr
    assert subscription_get(tenant=Tenant.objects.get(slug="beta")) is None
    assert ManualPayment.objects.get().status == "requested"


def test_an_unpaid_period_lapses_into_dunning_and_paying_reactivates_for_the_overdue_period(manual):
    with time_machine.travel(T0, tick=False) as clock:
        tenant = make_tenant("acme")
        payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
        first = manual_payment_mark_paid(tenant=tenant, actor="ops")
        clock.move_to(first.period_end - timedelta(minutes=1))
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 0}
        clock.move_to(first.period_end + timedelta(minutes=1))
        assert dunning_sweep_task() == {"past_due": 1, "suspended": 0}
        assert subscription_get(tenant=tenant).status == "past_due"
        clock.shift(timedelta(days=7))
        assert dunning_sweep_task() == {"past_due": 0, "suspended": 1}
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.SUSPENDED
        # The transfer arrives: the overdue period is the one paid for, continuing from the last one's end.
        renewal = manual_payment_mark_paid(tenant=tenant, actor="ops")
        assert (renewal.period_start, renewal.period_end) == (first.period_end, _month_later(first.period_end))
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.ACTIVE and subscription_get(tenant=tenant).status == "active"
        assert ManualPayment.objects.filter(tenant=tenant, status="paid").count() == 2


def test_cancelling_a_bank_transfer_subscription_falls_back_to_the_default_plan(manual):
    tenant = make_tenant("acme")
    payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    manual_payment_mark_paid(tenant=tenant, actor="ops")
    payments.checkout_start(tenant=tenant, plan_code="team", actor="alice", return_url=RETURN)  # an open request goes too
    subscription = payments.subscription_cancel(tenant=tenant, actor="alice")
    assert (subscription.status, subscription.plan.code) == ("canceled", "free")
    assert tenant_limits_get(tenant=tenant) == manual["free"].limits()
    assert not ManualPayment.objects.filter(status="requested").exists()
    # Subscribing again after cancelling starts a fresh period when paid.
    payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    manual_payment_mark_paid(tenant=tenant, actor="ops")
    assert subscription_get(tenant=tenant).status == "active"
