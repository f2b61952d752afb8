"""Billing fixtures: the seeded plans (a transactional test's flush empties every table, the migration's rows too)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from billing.models import Plan

seed_migration = importlib.import_module("billing.migrations.0003_seed_plans")


@pytest.fixture
def plans(db) -> dict[str, Plan]:
    """Free, Pro and Team as the data migration seeds them (re-seeded if a flush took them)."""
    seed_migration.seed(apps, None)
    return {p.code: p for p in Plan.objects.all()}


@pytest.fixture(scope="session")
def stripe_server():
    """The Stripe API stand-in (tests/billing/stripe_standin.py) for the session."""
    from tests.billing.stripe_standin import StripeStandIn

    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stripe_wharf(django_db_setup, django_db_blocker, tmp_path_factory, stripe_server):
    """A live Wharf (gunicorn) for the module with Stripe as the provider from its environment, the SDK against the
    stand-in; the browser may follow its redirects to the stand-in's Checkout and portal pages (CSP form-action)."""
    from tests.billing.stripe_standin import CHECKOUT_HOST, PORTAL_HOST, SECRET_KEY, WEBHOOK_SECRET
    from tests.e2e.wharf import start_wharf

    with django_db_blocker.unblock():
        server = start_wharf(
            tmp_path_factory.mktemp("stripe-wharf"),
            GATEWAY_BILLING_PROVIDER="stripe",
            GATEWAY_STRIPE_SECRET_KEY=SECRET_KEY,
            GATEWAY_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            GATEWAY_STRIPE_API_BASE=stripe_server.url,
            GATEWAY_STRIPE_PAGE_ORIGINS=f"{CHECKOUT_HOST} {PORTAL_HOST}",
        )
    yield server
    server.stop()


@pytest.fixture
def stripe_api(stripe_server, settings, plans):
    """Stripe as the provider, the real SDK pointed at the stand-in (emptied), and Pro and Team sold as Stripe prices."""
    from tests.billing.stripe_standin import SECRET_KEY, WEBHOOK_SECRET

    stripe_server.reset()
    settings.GATEWAY_BILLING_PROVIDER = "stripe"
    settings.GATEWAY_STRIPE_SECRET_KEY = SECRET_KEY
    settings.GATEWAY_STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.GATEWAY_STRIPE_API_BASE = stripe_server.url
    Plan.objects.filter(code="pro").update(stripe_price_id="price_pro_monthly")
    Plan.objects.filter(code="team").update(stripe_price_id="price_team_monthly")
    yield stripe_server
    stripe_server.reset()


@pytest.fixture
def deliver(stripe_api):
    """POST a Stripe event to the webhook endpoint, signed as Stripe signs it (or with another secret/time); the response."""
    from django.test import Client

    from tests.billing.stripe_standin import WEBHOOK_SECRET, signed

    client = Client()

    def _deliver(evt: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, body: bytes | None = None):
        payload, signature = signed(evt, secret, timestamp)
        return client.post(
            "/billing/webhooks/stripe/", body or payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )

    return _deliver
