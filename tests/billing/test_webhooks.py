"""Stripe's webhooks at /billing/webhooks/stripe/ (docs/decisions/0045): signed with Stripe's real scheme; once per
event id; in any order; never backwards; and a request that is not genuine changes nothing."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from accounts.models import AuditEvent, Tenant
from billing.models import ProviderEvent, Subscription
from billing.selectors import subscription_get
from billing.services import subscription_start
from tests.billing.stripe_standin import checkout_session, event, invoice_object, sign, subscription_object
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db
URL = "/billing/webhooks/stripe/"


def _completed(tenant: Tenant, **kwargs) -> dict:
    return event(
        "checkout.session.completed",
        checkout_session(tenant_id=tenant.pk, plan="pro", customer="cus_1", subscription="sub_1"),
        **kwargs,
    )


def _state(tenant: Tenant) -> tuple:
    s = Subscription.objects.filter(tenant=tenant).first()
    t = Tenant.objects.get(pk=tenant.pk)
    return (
        s and (s.plan.code, s.status, s.provider_customer_id, s.provider_subscription_id, s.past_due_since),
        t.status,
        ProviderEvent.objects.count(),
        AuditEvent.objects.filter(tenant=tenant).count(),
    )


def test_a_genuine_event_is_applied_and_recorded_once(deliver):
    tenant = make_tenant("acme")
    evt = _completed(tenant)
    r = deliver(evt)
    assert r.status_code == 200 and r.json() == {"received": True, "event": evt["id"], "outcome": "applied", "duplicate": False}
    row = ProviderEvent.objects.get()
    assert (row.provider, row.event_id, row.event_type, row.tenant_id, row.outcome) == (
        "stripe", evt["id"], "checkout.session.completed", tenant.pk, "applied"
    )  # fmt: skip
    assert subscription_get(tenant=tenant).status == "active"


def test_a_replay_answers_200_and_changes_nothing(deliver):
    tenant = make_tenant("acme")
    evt = _completed(tenant)
    deliver(evt)
    before = _state(tenant)
    r = deliver(evt)
    assert r.status_code == 200 and r.json()["duplicate"] is True and r.json()["outcome"] == "applied"
    assert _state(tenant) == before


@pytest.mark.parametrize("case", ["wrong secret", "too old", "tampered body", "no signature", "not json", "garbage header"])
def test_a_request_that_is_not_a_genuine_recent_event_is_400_and_changes_nothing(deliver, case):
    tenant = make_tenant("acme")
    evt = _completed(tenant)
    before = _state(tenant)
    client = Client()
    if case == "wrong secret":
        r = deliver(evt, secret="whsec_someone_else")
    elif case == "too old":
        r = deliver(evt, timestamp=int(time.time()) - 301)
    elif case == "tampered body":
        r = deliver(evt, body=json.dumps({**evt, "type": "invoice.paid"}).encode())
    elif case == "no signature":
        r = client.post(URL, json.dumps(evt), content_type="application/json")
    elif case == "not json":
        r = client.post(URL, b"\xff{nope", content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(b"\xff{nope"))
    else:
        r = client.post(URL, json.dumps(evt), content_type="application/json", HTTP_STRIPE_SIGNATURE="v1=,t=x")
    assert r.status_code == 400, r.content
    assert r.json()["error"]
    assert _state(tenant) == before and not ProviderEvent.objects.exists()


def test_a_signed_event_without_the_parts_of_an_event_is_400(deliver):
    r = deliver({"object": "event", "id": "evt_x", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}})
    assert r.status_code == 400 and not ProviderEvent.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch", "head"])
def test_only_post_is_allowed(stripe_api, method):
    r = getattr(Client(), method)(URL)
    assert r.status_code == 405 and not ProviderEvent.objects.exists()


@pytest.mark.parametrize("who", ["anonymous", "owner", "other tenant's owner", "staff"])
def test_no_login_stands_in_for_the_signature(deliver, who):
    """The endpoint knows no users: a session of any kind does not make a badly signed event acceptable."""
    tenant = make_tenant("acme", owner=UserFactory(username="owner"))
    make_tenant("beta", owner=UserFactory(username="other"))
    client = Client()
    users = {"owner": "owner", "other tenant's owner": "other", "staff": UserFactory(username="ops", is_staff=True).username}
    if who in users:
        client.force_login(UserFactory(username=users[who]))
    before = _state(tenant)
    evt = _completed(tenant)
    body = json.dumps(evt).encode()
    r = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body, "whsec_wrong"))
    assert r.status_code == 400 and _state(tenant) == before
    r = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))
    assert r.status_code == 200  # without a CSRF token, with or without a session: the signature is what counts


def test_without_stripe_configured_the_endpoint_is_404(deliver, settings):
    settings.GATEWAY_BILLING_PROVIDER = "manual"
    tenant = make_tenant("acme")
    assert deliver(_completed(tenant)).status_code == 404
    assert subscription_get(tenant=tenant) is None and not ProviderEvent.objects.exists()


def test_a_body_over_the_bound_is_413(deliver):
    tenant = make_tenant("acme")
    evt = _completed(tenant)
    evt["data"]["object"]["padding"] = "x" * (600 * 1024)
    assert deliver(evt).status_code == 413 and not ProviderEvent.objects.exists()


def test_events_wharf_does_not_act_on_or_of_no_tenant_here_are_200_and_recorded_as_ignored(deliver):
    r1 = deliver(event("customer.created", {"id": "cus_9", "object": "customer"}))
    r2 = deliver(event("invoice.paid", invoice_object(sub_id="sub_unknown", customer="cus_unknown", paid=True)))
    assert [r1.status_code, r2.status_code] == [200, 200]
    assert sorted(ProviderEvent.objects.values_list("outcome", "detail")) == [
        ("ignored", "no tenant of this gateway"),
        ("ignored", "not an event Wharf acts on"),
    ]


def test_updated_before_completed_ends_in_the_same_state(deliver, plans):
    tenant = make_tenant("acme")
    now = int(time.time())
    updated = subscription_object(sub_id="sub_1", tenant_id=tenant.pk, customer="cus_1", price="price_team_monthly")
    assert deliver(event("customer.subscription.updated", updated, created=now)).json()["outcome"] == "applied"
    assert deliver(_completed(tenant, created=now - 1)).json()["outcome"] == "stale"
    s = subscription_get(tenant=tenant)
    # The newer event's plan (Team, from its price) stands; the older checkout's "pro" did not go back over it.
    assert (s.plan.code, s.status, s.provider_customer_id, s.provider_subscription_id) == ("team", "active", "cus_1", "sub_1")
    assert s.current_period_end > s.current_period_start


def test_a_failure_reported_after_the_invoice_was_paid_does_not_make_it_past_due(deliver):
    tenant = make_tenant("acme")
    now = int(time.time())
    deliver(_completed(tenant, created=now - 10))
    paid = invoice_object(sub_id="sub_1", customer="cus_1", paid=True, invoice_id="in_1")
    failed = invoice_object(sub_id="sub_1", customer="cus_1", paid=False, invoice_id="in_1")
    assert deliver(event("invoice.paid", paid, created=now)).json()["outcome"] == "applied"
    # The same second (Stripe's created has one-second resolution): the invoice's own state decides.
    assert deliver(event("invoice.payment_failed", failed, created=now)).json()["outcome"] == "stale"
    assert deliver(event("invoice.payment_failed", failed, created=now - 5)).json()["outcome"] == "stale"
    s = subscription_get(tenant=tenant)
    assert s.status == "active" and s.past_due_since is None


def test_a_newer_failure_of_the_next_invoice_does_apply_and_a_later_payment_clears_it(deliver):
    tenant = make_tenant("acme")
    now = int(time.time())
    deliver(_completed(tenant, created=now - 100))
    deliver(event("invoice.paid", invoice_object(sub_id="sub_1", customer="cus_1", paid=True), created=now - 50))
    nxt = invoice_object(sub_id="sub_1", customer="cus_1", paid=False)
    assert deliver(event("invoice.payment_failed", nxt, created=now - 10)).json()["outcome"] == "applied"
    s = subscription_get(tenant=tenant)
    assert s.status == "past_due" and s.past_due_since is not None
    old_update = subscription_object(sub_id="sub_1", tenant_id=tenant.pk, customer="cus_1", price="price_pro_monthly")
    assert deliver(event("customer.subscription.updated", old_update, created=now - 20)).json()["outcome"] == "stale"
    assert subscription_get(tenant=tenant).status == "past_due"
    deliver(event("invoice.paid", {**nxt, "status": "paid"}, created=now))
    s = subscription_get(tenant=tenant)
    assert s.status == "active" and s.past_due_since is None


def test_a_deleted_event_for_an_older_subscription_does_not_cancel_the_current_one(deliver, plans):
    tenant = make_tenant("acme")
    deliver(_completed(tenant, created=int(time.time()) - 5))
    old = subscription_object(sub_id="sub_0", tenant_id=tenant.pk, customer="cus_1", price="price_pro_monthly", status="canceled")
    r = deliver(event("customer.subscription.deleted", old))
    assert r.json()["outcome"] == "applied" and subscription_get(tenant=tenant).status == "active"
    assert ProviderEvent.objects.get(event_type="customer.subscription.deleted").detail.startswith("not the tenant's current")


def test_stripe_never_lifts_an_operators_suspension(deliver, plans):
    from accounts.tenant_admin import tenant_suspend

    tenant = make_tenant("acme")
    subscription_start(tenant=tenant, plan_code="pro")
    tenant_suspend(tenant=tenant, reason="abuse report 7", actor="ops")
    deliver(_completed(tenant))
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED and tenant.suspension_reason == "abuse report 7"


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_at_once_on_several_connections_is_applied_once(deliver):
    import threading

    from django.db import connection

    tenant = make_tenant("acme")
    evt = _completed(tenant)
    barrier, answers = threading.Barrier(6), []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            r = deliver(evt)
            answers.append((r.status_code, r.json()["duplicate"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(answers) == [(200, False)] + [(200, True)] * 5
    assert ProviderEvent.objects.count() == 1 and Subscription.objects.filter(tenant=tenant).count() == 1
    assert AuditEvent.objects.filter(tenant=tenant, action="subscription.start").count() == 1


def test_an_event_of_a_tenant_being_deleted_is_ignored(deliver):
    tenant = make_tenant("acme")
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETING)
    r = deliver(_completed(tenant))
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"
    assert not Subscription.objects.exists()


def test_a_genuine_event_that_cannot_be_applied_now_is_500_so_stripe_resends_it_and_nothing_is_kept(deliver, plans):
    from billing.models import Plan

    tenant = make_tenant("acme")
    Plan.objects.filter(code="pro").update(is_active=False)
    evt = _completed(tenant)
    r = deliver(evt)
    assert r.status_code == 500 and "takes no new subscribers" in r.json()["error"]
    assert not ProviderEvent.objects.exists() and subscription_get(tenant=tenant) is None
    Plan.objects.filter(code="pro").update(is_active=True)  # the operators fix it; Stripe's next attempt applies
    assert deliver(evt).json() == {"received": True, "event": evt["id"], "outcome": "applied", "duplicate": False}


def test_an_update_of_another_stripe_subscription_of_the_tenant_changes_nothing(deliver, plans):
    tenant = make_tenant("acme")
    deliver(_completed(tenant, created=int(time.time()) - 5))
    stray = subscription_object(
        sub_id="sub_other", tenant_id=tenant.pk, customer="cus_1", price="price_team_monthly", status="past_due"
    )
    assert deliver(event("customer.subscription.updated", stray)).json()["outcome"] == "applied"
    s = subscription_get(tenant=tenant)
    assert (s.plan.code, s.status, s.provider_subscription_id) == ("pro", "active", "sub_1")
