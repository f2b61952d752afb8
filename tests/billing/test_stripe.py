"""Stripe through the real SDK against the stand-in (docs/decisions/0045): Checkout, the portal, cancelling, and an
idempotency key on every call that a retry reuses."""

from __future__ import annotations

import pytest
import time_machine

from accounts.limits import tenant_limits_get
from accounts.models import AuditEvent
from billing import payments
from billing.models import Subscription
from billing.payments.base import ProviderUnavailable
from billing.payments.stripe_provider import StripeProvider
from billing.selectors import subscription_get
from billing.services import subscription_start
from gateway.core.errors import Conflict, NotFound, ValidationError
from tests.billing.stripe_standin import checkout_session, event, subscription_object
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db
RETURN = "https://wharf.example/orgs/acme/billing/"


def test_the_configured_provider_is_stripe_and_none_means_no_payments(stripe_api, settings):
    assert isinstance(payments.provider_get(), StripeProvider) and payments.provider_get().has_portal
    settings.GATEWAY_BILLING_PROVIDER = ""
    assert payments.provider_get() is None
    with pytest.raises(NotFound, match="takes no payments"):
        payments.checkout_start(tenant=make_tenant("acme"), plan_code="pro", actor="alice", return_url=RETURN)


def test_checkout_is_a_subscription_session_for_the_plans_price_with_the_tenant_in_its_metadata(stripe_api):
    tenant = make_tenant("acme")
    url = payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    (call,) = stripe_api.calls("/v1/checkout/sessions")
    assert url.startswith("https://checkout.stripe.test/c/pay/cs_test")
    assert call.authorization == "Bearer sk_test_wharf_standin"
    p = call.params
    assert (
        p["mode"] == "subscription" and p["line_items[0][price]"] == "price_pro_monthly" and p["line_items[0][quantity]"] == "1"
    )
    assert p["metadata[tenant_id]"] == p["subscription_data[metadata][tenant_id]"] == p["client_reference_id"] == str(tenant.pk)
    assert p["metadata[plan]"] == "pro"
    assert p["success_url"] == RETURN + "?checkout=success&session_id={CHECKOUT_SESSION_ID}"
    assert p["cancel_url"] == RETURN + "?checkout=canceled"
    assert "customer" not in p  # Checkout makes the customer; its id arrives with checkout.session.completed
    assert call.idempotency_key.startswith("wharf-checkout-")
    assert AuditEvent.objects.filter(tenant=tenant, action="billing.checkout", detail__plan="pro").count() == 1


def test_the_same_checkout_again_reuses_its_key_and_gets_the_same_session_another_plan_does_not(stripe_api):
    tenant = make_tenant("acme")
    first = payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    again = payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    team = payments.checkout_start(tenant=tenant, plan_code="team", actor="alice", return_url=RETURN)
    keys = [c.idempotency_key for c in stripe_api.calls("/v1/checkout/sessions")]
    assert first == again != team
    assert keys[0] == keys[1] != keys[2]
    other = payments.checkout_start(tenant=make_tenant("beta"), plan_code="pro", actor="bob", return_url=RETURN)
    assert other != first and stripe_api.calls("/v1/checkout/sessions")[-1].idempotency_key not in keys


def test_a_failed_call_is_retried_by_the_sdk_with_the_same_key(stripe_api):
    stripe_api.fail_next(1)
    url = payments.checkout_start(tenant=make_tenant("acme"), plan_code="pro", actor="alice", return_url=RETURN)
    first, retry = stripe_api.calls("/v1/checkout/sessions")
    assert url and first.idempotency_key == retry.idempotency_key and first.params == retry.params


def test_stripe_down_is_a_clear_error_and_changes_nothing(stripe_api):
    tenant = make_tenant("acme")
    stripe_api.fail_next(10)
    with pytest.raises(ProviderUnavailable, match="Stripe could not start the checkout"):
        payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)
    assert subscription_get(tenant=tenant) is None
    assert not AuditEvent.objects.filter(action="billing.checkout").exists()


def test_a_wrong_secret_key_is_a_clear_error(stripe_api, settings):
    settings.GATEWAY_STRIPE_SECRET_KEY = "sk_test_wrong"
    with pytest.raises(ProviderUnavailable, match="Invalid API Key"):
        payments.checkout_start(tenant=make_tenant("acme"), plan_code="pro", actor="alice", return_url=RETURN)


@pytest.mark.parametrize(
    "code,error,message",
    [("gold", NotFound, "No plan 'gold'"), ("free", ValidationError, "cannot be bought online")],
)
def test_a_plan_that_cannot_be_bought_calls_nobody(stripe_api, code, error, message):
    with pytest.raises(error, match=message):
        payments.checkout_start(tenant=make_tenant("acme"), plan_code=code, actor="alice", return_url=RETURN)
    assert stripe_api.requests == []


def _subscribed(deliver, tenant, plan="pro", customer="cus_acme", sub_id="sub_acme") -> Subscription:
    assert deliver(event("checkout.session.completed", checkout_session(
        tenant_id=tenant.pk, plan=plan, customer=customer, subscription=sub_id))).status_code == 200  # fmt: skip
    return subscription_get(tenant=tenant)


def test_subscribe_end_to_end_checkout_then_webhook_gives_the_plan_and_its_limits(stripe_api, deliver, plans):
    tenant = make_tenant("acme")
    payments.checkout_start(tenant=tenant, plan_code="team", actor="alice", return_url=RETURN)
    subscription = _subscribed(deliver, tenant, plan="team")
    assert (subscription.plan.code, subscription.status, subscription.provider) == ("team", "active", "stripe")
    assert (subscription.provider_customer_id, subscription.provider_subscription_id) == ("cus_acme", "sub_acme")
    assert tenant_limits_get(tenant=tenant) == plans["team"].limits()
    # Subscribed: a second checkout would bill twice, so it is refused; plan changes go through the portal.
    with pytest.raises(Conflict, match="billing portal"):
        payments.checkout_start(tenant=tenant, plan_code="pro", actor="alice", return_url=RETURN)


def test_the_portal_opens_for_the_tenants_customer_and_a_click_a_minute_later_gets_a_new_session(stripe_api, deliver):
    tenant = make_tenant("acme")
    with pytest.raises(Conflict, match="subscribe to a plan first"):
        payments.portal_open(tenant=tenant, return_url=RETURN)
    _subscribed(deliver, tenant)
    with time_machine.travel("2026-12-01 10:00:05", tick=False):
        url = payments.portal_open(tenant=tenant, return_url=RETURN)
        assert payments.portal_open(tenant=tenant, return_url=RETURN) == url  # a retry: the same key, the same session
    with time_machine.travel("2026-12-01 10:01:05", tick=False):
        later = payments.portal_open(tenant=tenant, return_url=RETURN)
    calls = stripe_api.calls("/v1/billing_portal/sessions")
    assert url.startswith("https://billing.stripe.test/p/session/") and later != url
    assert all(c.params == {"customer": "cus_acme", "return_url": RETURN} for c in calls)
    assert calls[0].idempotency_key == calls[1].idempotency_key != calls[2].idempotency_key


def test_cancel_asks_stripe_to_end_at_the_period_end_and_the_deleted_event_cancels(stripe_api, deliver, plans, settings):
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "free"
    tenant = make_tenant("acme")
    _subscribed(deliver, tenant)
    payments.subscription_cancel(tenant=tenant, actor="alice")
    payments.subscription_cancel(tenant=tenant, actor="alice")  # a retry: the same key
    first, retry = stripe_api.calls("/v1/subscriptions/")
    assert first.path == "/v1/subscriptions/sub_acme" and first.params == {"cancel_at_period_end": "true"}
    assert first.idempotency_key == retry.idempotency_key
    assert subscription_get(tenant=tenant).status == "active"  # paid until the period ends
    deleted = subscription_object(sub_id="sub_acme", tenant_id=tenant.pk, customer="cus_acme", price="price_pro_monthly")
    assert deliver(event("customer.subscription.deleted", {**deleted, "status": "canceled"})).status_code == 200
    subscription = subscription_get(tenant=tenant)
    assert (subscription.status, subscription.plan.code) == ("canceled", "free")
    assert tenant_limits_get(tenant=tenant) == plans["free"].limits()


def test_cancel_without_a_stripe_subscription_is_refused(stripe_api, plans):
    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="free")
    with pytest.raises(Conflict, match="no Stripe subscription"):
        payments.subscription_cancel(tenant=tenant, actor="alice")
    assert stripe_api.requests == []


def test_staff_sell_a_plan_through_stripe_by_giving_it_a_price_id(stripe_api):
    from billing.services import plan_update

    plan_update(code="free", changes={"stripe_price_id": "price_free"}, actor="ops")
    with pytest.raises(ValidationError, match="Stripe Price id"):
        plan_update(code="free", changes={"stripe_price_id": "prod_123"}, actor="ops")
    with pytest.raises(Conflict, match="already sold as Stripe price 'price_pro_monthly'"):
        plan_update(code="free", changes={"stripe_price_id": "price_pro_monthly"}, actor="ops")
    from billing.models import Plan

    assert Plan.objects.get(code="free").stripe_price_id == "price_free"
    plan_update(code="free", changes={"stripe_price_id": ""}, actor="ops")
    assert Plan.objects.get(code="free").stripe_price_id == ""
