"""The webhook endpoint over real HTTP: a live Wharf (gunicorn, the real middleware) configured for Stripe from its
environment, receiving events signed with Stripe's scheme (docs/decisions/0045)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from accounts.limits import tenant_limits_get
from billing import payments
from billing.models import ProviderEvent
from billing.selectors import subscription_get
from tests.billing.stripe_standin import checkout_session, event, sign
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


def _post(url: str, body: bytes, signature: str | None, method: str = "POST") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Stripe-Signature": signature} if signature else {})}
    request = urllib.request.Request(url, data=body if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        data = e.read()
        return e.code, json.loads(data) if data.startswith(b"{") else {}


def test_subscribe_end_to_end_over_http(stripe_wharf, stripe_api, plans):
    url = f"{stripe_wharf.url}/billing/webhooks/stripe/"
    tenant = make_tenant("acme")
    checkout = payments.checkout_start(
        tenant=tenant, plan_code="pro", actor="alice", return_url=f"{stripe_wharf.url}/orgs/acme/billing/"
    )
    assert checkout.startswith("https://checkout.stripe.test/")
    body = json.dumps(event("checkout.session.completed", checkout_session(
        tenant_id=tenant.pk, plan="pro", customer="cus_live", subscription="sub_live"))).encode()  # fmt: skip

    assert _post(url, body, sign(body, "whsec_not_ours"))[0] == 400
    assert _post(url, body, None)[0] == 400
    assert _post(url, b"", None, method="GET")[0] == 405
    assert subscription_get(tenant=tenant) is None and not ProviderEvent.objects.exists()

    status, answer = _post(url, body, sign(body))
    assert (status, answer["outcome"], answer["duplicate"]) == (200, "applied", False)
    assert _post(url, body, sign(body))[1]["duplicate"] is True
    subscription = subscription_get(tenant=tenant)
    assert (subscription.plan.code, subscription.status, subscription.provider_customer_id) == ("pro", "active", "cus_live")
    assert tenant_limits_get(tenant=tenant) == plans["pro"].limits()
