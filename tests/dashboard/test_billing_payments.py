"""Paying from the billing page (decision 0050): checkout and payment methods through the provider, owners only; with a
provider the direct plan change is gone; without one the page is as before (tests/dashboard/test_billing.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent, Tenant
from accounts.tenant_admin import tenant_suspend
from billing.models import ManualPayment, Subscription
from billing.selectors import subscription_get
from billing.services import subscription_start, subscription_status_set
from tests.billing import conftest as billing_fixtures
from tests.billing.stripe_standin import CHECKOUT_HOST, PORTAL_HOST
from tests.dashboard.conftest import CALLERS, assert_denied
from tests.dashboard.test_billing import _text

stripe_server = billing_fixtures.stripe_server  # the Stripe API stand-in, the real SDK against it
stripe_api = billing_fixtures.stripe_api
plans = billing_fixtures.plans

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/billing/"
CHECKOUT = URL + "checkout/"
METHODS = URL + "payment-methods/"
RETURN = "http://testserver" + URL


@pytest.fixture
def manual(settings, plans):
    settings.GATEWAY_BILLING_PROVIDER = "manual"


@pytest.fixture
def paying(tenant, stripe_api):
    """acme on Pro, paid through Stripe (customer and subscription ids as checkout.session.completed leaves them)."""
    subscription_start(tenant=tenant, plan_code="pro")
    Subscription.objects.filter(tenant=tenant).update(
        provider="stripe", provider_customer_id="cus_acme", provider_subscription_id="sub_acme"
    )
    return Tenant.objects.get(pk=tenant.pk)


def _state() -> dict:
    return {
        "subscriptions": list(Subscription.objects.order_by("pk").values()),
        "manual": list(ManualPayment.objects.order_by("pk").values()),
        "tenants": list(Tenant.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_checkout_and_payment_methods_are_for_owners_only(as_caller, paying, stripe_api, caller):
    before = _state()
    client = as_caller(caller)
    checkout = client.post(CHECKOUT, {"plan": "team"})
    methods = client.post(METHODS)
    if caller == "owner":
        assert checkout.status_code == 302 and methods.status_code == 302
        assert methods["Location"].startswith(f"{PORTAL_HOST}/p/session/bps_")
        (portal,) = stripe_api.calls("/v1/billing_portal/sessions")
        assert portal.params == {"customer": "cus_acme", "return_url": RETURN}
    else:
        assert_denied(checkout, caller)
        assert_denied(methods, caller)
        assert stripe_api.calls("/v1") == []
        assert _state() == before


def test_an_owner_subscribes_through_stripe_checkout(as_caller, tenant, stripe_api):
    page = _text(as_caller("owner").get(URL))
    assert "acme pays by Stripe: subscribing and changing plan go through it." in page
    assert "Subscribe to Pro with Stripe" in page and "Change to Pro…" not in page
    response = as_caller("owner").post(CHECKOUT, {"plan": "pro"})
    assert response.status_code == 302 and response["Location"].startswith(f"{CHECKOUT_HOST}/c/pay/cs_")
    (call,) = stripe_api.calls("/v1/checkout/sessions")
    assert call.params["line_items[0][price]"] == "price_pro_monthly" and call.params["client_reference_id"] == str(tenant.pk)
    assert call.params["cancel_url"] == RETURN + "?checkout=canceled"
    assert subscription_get(tenant=tenant) is None  # nothing is subscribed until Stripe's webhook says it was paid


def test_a_refused_checkout_says_why_and_changes_nothing(as_caller, paying, stripe_api):
    before = _state()
    owner = as_caller("owner")
    for data, message in [
        ({"plan": "team"}, "This organisation already pays through Stripe: change the plan in the billing portal."),
        ({}, "Choose a plan to subscribe to: nothing was changed."),
    ]:
        response = owner.post(CHECKOUT, data, follow=True)
        assert response.redirect_chain == [(URL, 302)] and message in _text(response)
    Subscription.objects.filter(tenant=paying).update(status="canceled")
    response = owner.post(CHECKOUT, {"plan": "free"}, follow=True)  # Free has no Stripe price
    assert "Plan Free cannot be bought online (it has no Stripe price)." in _text(response)
    assert stripe_api.calls("/v1") == [] and ManualPayment.objects.count() == 0
    assert _state()["audit"] == before["audit"]


def test_with_a_provider_the_direct_plan_change_is_gone(as_caller, paying):
    before = _state()
    owner = as_caller("owner")
    assert owner.get(URL + "plans/team/").status_code == 404
    assert owner.post(URL + "plans/team/", {"current": "pro"}).status_code == 404
    assert subscription_get(tenant=paying).plan.code == "pro" and _state() == before


def test_a_bank_transfer_request_shows_its_reference_and_amount(as_caller, tenant, manual):
    owner = as_caller("owner")
    page = _text(owner.get(URL))
    assert "Subscribe to Team with bank transfer" in page and "Payment methods" not in page
    response = owner.post(CHECKOUT, {"plan": "team"})
    payment = ManualPayment.objects.get(tenant=tenant)
    assert response.status_code == 302 and response["Location"] == f"{RETURN}?payment={payment.reference}"
    for caller in ("owner", "admin"):  # admins read the page: they see what is owed
        page = _text(as_caller(caller).get(response["Location"]))
        assert f"Awaiting a bank transfer of 49.00 USD for the Team plan. Quote the reference {payment.reference}" in page
    assert owner.post(METHODS).status_code == 404  # no portal for bank transfers
    assert subscription_get(tenant=tenant) is None


def test_without_a_provider_there_is_no_payment_section_and_its_routes_are_404(as_caller, tenant, settings):
    settings.GATEWAY_BILLING_PROVIDER = ""
    owner = as_caller("owner")
    assert b'id="billing-payment"' not in owner.get(URL).content
    assert owner.post(CHECKOUT, {"plan": "pro"}).status_code == 404 and owner.post(METHODS).status_code == 404


def test_checkout_is_post_only(as_caller, paying):
    assert as_caller("owner").get(CHECKOUT).status_code == 405
    assert as_caller("owner").get(METHODS).status_code == 405


def test_queries_are_constant_with_a_provider(as_caller, tenant, manual):
    client = as_caller("owner")
    client.get(URL)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    client.post(CHECKOUT, {"plan": "pro"})
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ("?checkout=success&session_id=cs_1", "Paid: the plan changes as soon as Stripe confirms it"),
        ("?checkout=canceled", "The checkout was canceled: nothing was changed."),
        ("?checkout=<script>", None),
    ],
)
def test_coming_back_from_checkout_says_what_happens_next(as_caller, paying, query, notice):
    response = as_caller("owner").get(URL + query)
    assert response.status_code == 200
    assert (b'id="billing-checkout-return"' in response.content) == (notice is not None)
    assert notice is None or notice in _text(response)
    assert b"<script>" not in response.content


def _said(response) -> str:
    """The page's text as read (no space that a closing tag left before punctuation)."""
    return re.sub(r" ([:,.)])", r"\1", _text(response))


def test_payment_methods_and_plan_buttons_follow_what_is_paid_through_stripe(as_caller, tenant, stripe_api):
    subscription_start(tenant=tenant, plan_code="free")
    page = _said(as_caller("owner").get(URL))
    assert "Payment methods" not in page and "Change to Pro with Stripe" in page  # nothing paid through Stripe yet
    Subscription.objects.filter(tenant=tenant).update(
        provider="stripe", provider_customer_id="cus_acme", provider_subscription_id="sub_acme"
    )
    page = _said(as_caller("owner").get(URL))
    assert "Payment methods" in page and "with Stripe" not in page  # a second Checkout would be refused: no button
    assert "acme pays for its plan through Stripe: change it under “Payment methods”, on Stripe's page." in page
    Subscription.objects.filter(tenant=tenant).update(status="canceled")  # ended: subscribing again is Checkout again
    assert "Change to Pro with Stripe" in _said(as_caller("owner").get(URL))


def test_past_due_shows_the_grace_end_to_owners_and_admins(as_caller, paying, settings):
    settings.GATEWAY_BILLING_GRACE_DAYS = 3
    since = timezone.now() - timedelta(days=1)
    Subscription.objects.filter(tenant=paying).update(status="past_due", past_due_since=since)
    grace_end = (since + timedelta(days=3)).strftime("%Y-%m-%d %H:%M UTC")
    for caller, hint in [("owner", "Give Stripe a working card under “Payment methods” below"),
                         ("admin", "An owner can give Stripe a working card under Payment methods")]:  # fmt: skip
        page = _said(as_caller(caller).get(URL))
        assert f"Payment failed on {since:%Y-%m-%d}: the subscription is past due." in page
        assert f"Unless it is paid by {grace_end}, pushes to acme will be refused (pulls go on)." in page and hint in page
    Subscription.objects.filter(tenant=paying).update(past_due_since=timezone.now() - timedelta(days=4))
    page = _said(as_caller("owner").get(URL))  # the sweep has not run yet: the page says it will
    assert "The grace period ended on" in page and "pushes to acme will be refused shortly" in page


def test_a_suspension_says_whether_paying_lifts_it_never_the_operators_reason(as_caller, paying):
    subscription_status_set(tenant=paying, status="suspended", actor="test")  # unpaid: billing's own suspension
    page = _said(as_caller("owner").get(URL))
    assert "acme is suspended because its subscription is unpaid" in page and "refused until it is paid" in page
    subscription_status_set(tenant=paying, status="active", actor="test")
    tenant_suspend(tenant=paying, reason="abuse report #4711", actor="staff")
    page = _said(as_caller("admin").get(URL))
    assert "acme is suspended by the platform operators" in page and "Contact support." in page
    assert "4711" not in page and "working card" not in page  # paying does not lift an operator's suspension


def test_no_notice_while_paid(as_caller, paying):
    assert b'id="billing-dunning"' not in as_caller("owner").get(URL).content
