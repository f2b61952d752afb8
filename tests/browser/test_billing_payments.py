"""The billing page's payment sections in a real browser, against live Wharfs configured with a payment provider
(decisions 0045, 0050, 0053): Stripe (the SDK against tests/billing/stripe_standin.py, webhooks signed with Stripe's
scheme) and bank transfer. The session's `wharf` has no provider, so each provider gets one module-scoped gunicorn.

Stripe's hosted pages (Checkout, the customer portal) cannot be reached from here: the browser's requests to the
stand-in's hosts are answered by Playwright with a blank page, after Wharf's redirect and the page's CSP let them go.
Every state of the page passes axe, logs no CSP refusal, fits a phone's width and is saved under var/screenshots/.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditEvent, Tenant
from billing.dunning import dunning_sweep, subscription_grace_end
from billing.models import ManualPayment, Plan, Subscription
from billing.selectors import subscription_get
from billing.services import subscription_start
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import seed_migration
from tests.billing.stripe_standin import CHECKOUT_HOST, PORTAL_HOST, checkout_session, event, invoice_object, signed
from tests.billing.test_webhook_live import _post
from tests.browser.conftest import _new_context, axe_check, csp_violations, screenshot, sign_in, watch_console
from tests.factories import UserFactory, make_member, make_tenant

stripe_server = billing_fixtures.stripe_server  # the Stripe API stand-in, in this process
stripe_wharf = billing_fixtures.stripe_wharf  # a live Wharf with GATEWAY_BILLING_PROVIDER=stripe, for this module

PHONE = {"width": 390, "height": 844}
STRIPE_PAGE = (
    "<!doctype html><html lang='en'><head><title>Stripe (stand-in)</title></head><body><main><h1>Stripe</h1></main></body></html>"
)


@pytest.fixture(scope="module")
def manual_wharf(django_db_setup, django_db_blocker, tmp_path_factory):
    """A live Wharf taking bank transfers (GATEWAY_BILLING_PROVIDER=manual), for this module."""
    from tests.e2e.wharf import start_wharf

    with django_db_blocker.unblock():
        server = start_wharf(tmp_path_factory.mktemp("manual-wharf"), GATEWAY_BILLING_PROVIDER="manual")
    yield server
    server.stop()


@pytest.fixture
def open_page(browser, transactional_db):
    """`open_page(server, user)`: a signed-in page on `server` in a fresh context (closed at the end of the test)."""
    made = []

    def _open(server, user):
        ctx = _new_context(browser, server)
        for host in (CHECKOUT_HOST, PORTAL_HOST):
            ctx.route(f"{host}/**", lambda route: route.fulfill(status=200, content_type="text/html", body=STRIPE_PAGE))
        made.append(ctx)
        page = watch_console(ctx.new_page())
        sign_in(page, user)
        return page

    yield _open
    for ctx in made:
        ctx.close()


def _org(slug: str, *, plan: str | None):
    """The organisation `slug` and its owner; Pro and Team sold on Stripe. Each test has its own slug: a live server
    caches tenants by slug for seconds, and these servers live for this module only."""
    seed_migration.seed(apps, None)  # a transactional test's flush took the seeded plans
    Plan.objects.filter(code="pro").update(stripe_price_id="price_pro_monthly")
    Plan.objects.filter(code="team").update(stripe_price_id="price_team_monthly")
    owner = UserFactory(username=f"{slug}-owner")
    tenant = make_tenant(slug, owner=owner)
    if plan:
        subscription_start(tenant=tenant, plan_code=plan)
    return slug, owner, tenant


def _check(page, name: str) -> None:
    """This state of the page: no serious axe violation, no CSP refusal, saved as a screenshot, no sideways scroll on a phone."""
    axe_check(page)
    assert csp_violations(page) == []
    screenshot(page, name)
    size = page.viewport_size
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
    page.set_viewport_size(size)


def _deliver(server, evt: dict) -> dict:
    """POST the event to the live server's webhook, signed with Stripe's scheme; its answer (applied)."""
    status, answer = _post(f"{server.url}/billing/webhooks/stripe/", *signed(evt))
    assert (status, answer.get("outcome")) == (200, "applied"), answer
    return answer


def _grace_end(tenant) -> str:
    grace_end = subscription_grace_end(subscription=subscription_get(tenant=tenant))
    assert grace_end is not None
    return grace_end.strftime("%Y-%m-%d %H:%M UTC")


def test_stripe_subscribe_pay_fail_and_suspend(stripe_wharf, stripe_server, open_page):
    slug, owner, tenant = _org("acme", plan="free")
    billing = f"/orgs/{slug}/billing/"
    stripe_server.reset()
    page = open_page(stripe_wharf, owner)
    page.goto(billing)
    assert f"{slug} pays by Stripe: subscribing and changing plan go through it." in page.locator("#billing-payment").inner_text()
    assert page.get_by_role("button", name="Payment methods").count() == 0  # nothing is paid through Stripe yet
    _check(page, "billing_payments_stripe_free")

    page.get_by_role("button", name="Change to Pro with Stripe").click()
    page.wait_for_url(f"{CHECKOUT_HOST}/c/pay/cs_*")
    (call,) = stripe_server.calls("/v1/checkout/sessions")
    session = stripe_server.idempotent[call.idempotency_key][3]
    assert page.url == session["url"] and call.idempotency_key.startswith("wharf-checkout-")
    assert call.params["metadata[tenant_id]"] == call.params["subscription_data[metadata][tenant_id]"] == str(tenant.pk)
    assert (call.params["client_reference_id"], call.params["line_items[0][price]"]) == (str(tenant.pk), "price_pro_monthly")
    assert subscription_get(tenant=tenant).plan.code == "free"  # nothing changes until Stripe says it was paid

    customer, sub_id = f"cus_{slug}", f"sub_{slug}"
    _deliver(stripe_wharf, event("checkout.session.completed", checkout_session(
        tenant_id=tenant.pk, plan="pro", customer=customer, subscription=sub_id)))  # fmt: skip
    page.goto(call.params["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))  # Stripe sends the browser back
    assert page.locator("#billing-checkout-return").inner_text().startswith("Paid: the plan changes")
    plan = page.locator("#billing-plan").inner_text()
    assert "Pro" in plan and "9.00 USD per month" in plan and "Active" in plan
    assert page.locator("#billing-dunning").count() == 0
    # Paying through Stripe now: another Checkout would bill twice, so the plan changes on Stripe's page.
    assert page.locator("#billing-plans button").count() == 0
    assert "change it under “Payment methods”, on Stripe's page" in page.locator("#billing-plans-portal").inner_text()
    _check(page, "billing_payments_stripe_active")

    page.get_by_role("button", name="Payment methods").click()
    page.wait_for_url(f"{PORTAL_HOST}/p/session/bps_*")
    (portal,) = stripe_server.calls("/v1/billing_portal/sessions")
    assert portal.params == {"customer": customer, "return_url": stripe_wharf.url + billing}
    assert portal.idempotency_key and portal.idempotency_key.startswith("wharf-portal-")

    _deliver(stripe_wharf, event("invoice.payment_failed", invoice_object(sub_id=sub_id, customer=customer, paid=False)))
    page.goto(billing)
    notice = page.locator("#billing-dunning").inner_text()
    today = timezone.now().strftime("%Y-%m-%d")
    assert f"Payment failed on {today}: the subscription is past due." in notice
    assert f"Unless it is paid by {_grace_end(tenant)}, pushes to {slug} will be refused (pulls go on)." in notice
    assert "Give Stripe a working card under “Payment methods” below" in notice
    assert "Past Due" in page.locator("#billing-plan").inner_text()
    _check(page, "billing_payments_stripe_past_due")

    # The grace period passes unpaid: the hourly sweep suspends the organisation as unpaid.
    Subscription.objects.filter(tenant=tenant).update(past_due_since=timezone.now() - timedelta(days=8))
    assert dunning_sweep()["suspended"] == 1
    page.goto(billing)
    notice = page.locator("#billing-dunning").inner_text()
    assert f"{slug} is suspended because its subscription is unpaid (since {today})" in notice
    assert "pushes and deletes are refused until it is paid; pulls still work." in notice
    assert page.locator(".org-name .badge.warn").inner_text() == "suspended"
    _check(page, "billing_payments_stripe_suspended")

    # Stripe's retry succeeds: active again, the suspension lifted, the notice gone.
    _deliver(stripe_wharf, event("invoice.paid", invoice_object(sub_id=sub_id, customer=customer, paid=True)))
    page.goto(billing)
    assert page.locator("#billing-dunning").count() == 0 and "Active" in page.locator("#billing-plan").inner_text()
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.ACTIVE


def _state(tenant) -> dict:
    return {
        "subscription": list(Subscription.objects.filter(tenant=tenant).values()),
        "manual": list(ManualPayment.objects.filter(tenant=tenant).values()),
        "audit": AuditEvent.objects.filter(tenant=tenant).count(),
    }


def test_only_owners_get_the_payment_buttons(stripe_wharf, stripe_server, open_page):
    slug, owner, tenant = _org("globex", plan="pro")
    Subscription.objects.filter(tenant=tenant).update(
        provider="stripe", provider_customer_id=f"cus_{slug}", provider_subscription_id=f"sub_{slug}"
    )
    Subscription.objects.filter(tenant=tenant).update(status="past_due", past_due_since=timezone.now())
    billing = f"/orgs/{slug}/billing/"
    stripe_server.reset()
    for role in ("admin", "writer"):
        page = open_page(stripe_wharf, make_member(tenant, role, username=f"{slug}-{role}"))
        response = page.goto(billing)
        if role == "admin":  # reads the page and what is owed, pays nothing
            assert response.status == 200
            assert page.locator("main button").count() == 0 and page.locator("#billing-plans").count() == 0
            notice = page.locator("#billing-dunning").inner_text()
            assert f"Unless it is paid by {_grace_end(tenant)}" in notice
            assert "An owner can give Stripe a working card under Payment methods" in notice
            assert f"Only owners of {slug} change its plan." in page.locator("main").inner_text()
            _check(page, "billing_payments_stripe_admin")
        else:
            assert response.status == 404
        page.goto("/")
        token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
        before = _state(tenant)
        for action in ("checkout/", "payment-methods/"):  # a valid CSRF token: the refusal is the role's (404), not CSRF's
            answer = page.request.post(billing + action, form={"plan": "team", "csrfmiddlewaretoken": token}, max_redirects=0)
            assert answer.status == 404, (role, action, answer.status)
        assert stripe_server.calls("/v1") == [] and _state(tenant) == before


def test_bank_transfer_request_paid_and_lapsed(manual_wharf, open_page):
    slug, owner, tenant = _org("initech", plan=None)
    billing = f"/orgs/{slug}/billing/"
    page = open_page(manual_wharf, owner)
    page.goto(billing)
    assert (
        f"{slug} pays by bank transfer: subscribing and changing plan go through it."
        in page.locator("#billing-payment").inner_text()
    )
    assert page.get_by_role("button", name="Payment methods").count() == 0  # bank transfers have no portal
    _check(page, "billing_payments_manual_no_plan")

    page.get_by_role("button", name="Subscribe to Team with bank transfer").click()
    page.wait_for_url(f"**{billing}?payment=WHARF-*")
    payment = ManualPayment.objects.get(tenant=tenant)
    transfer = page.locator("#billing-transfer").inner_text()
    assert f"Awaiting a bank transfer of 49.00 USD for the Team plan. Quote the reference {payment.reference}" in transfer
    assert subscription_get(tenant=tenant) is None  # the plan starts when the operators see it paid
    _check(page, "billing_payments_manual_requested")

    out = io.StringIO()
    call_command("billing_payments", "paid", slug, "--bank-reference", "STATEMENT 4711", stdout=out)
    assert payment.reference in out.getvalue()
    page.goto(billing)
    plan = page.locator("#billing-plan").inner_text()
    assert "Team" in plan and "49.00 USD per month" in plan and "Active" in plan
    assert page.locator("#billing-transfer").count() == 0 and page.locator("#billing-dunning").count() == 0
    _check(page, "billing_payments_manual_active")

    # The paid period ends with no transfer for the next: the sweep makes it past_due, the page says until when and how.
    now = timezone.now()
    Subscription.objects.filter(tenant=tenant).update(
        current_period_start=now - timedelta(days=31), current_period_end=now - timedelta(hours=1)
    )
    assert dunning_sweep()["past_due"] == 1
    page.goto(billing)
    notice = page.locator("#billing-dunning").inner_text()
    assert f"Unless it is paid by {_grace_end(tenant)}, pushes to {slug} will be refused (pulls go on)." in notice
    assert f"Pay by bank transfer: the operators make {slug} active again when they see it paid." in notice
    _check(page, "billing_payments_manual_past_due")
