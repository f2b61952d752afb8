"""Webhooks in a real browser against the live server, with a real HTTP receiver on 127.0.0.1 and a real Celery
worker: create a webhook (the secret shown once), send a test event, watch the polled log show the 2xx, redeliver."""

from __future__ import annotations

import time
import uuid

import pytest

from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant
from tests.helpers import celery_worker
from tests.replication import conftest as replication_fixtures

hook_server = replication_fixtures.hook_server  # a real HTTP server on 127.0.0.1 recording every POST


@pytest.fixture
def worker(live, tmp_path):
    """A real Celery worker on the default queue (the one webhook deliveries go to), ready to take tasks."""
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = celery_worker("celery", log)
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield proc
        proc.terminate()
        proc.wait(30)


def test_create_test_and_redeliver_a_webhook(page, live, hook_server, worker):
    slug = "w" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug)
    make_tenant(slug, owner=owner)
    sign_in(page, owner)

    page.goto(f"/orgs/{slug}/webhooks/")
    assert "No webhooks yet." in page.locator("main").inner_text()
    axe_check(page)
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("Payload URL").fill(hook_server.url)
    page.get_by_label("integrity.problem", exact=False).check()
    page.get_by_label("Description").fill("CI notifications")
    axe_check(page)
    page.get_by_role("button", name="Create webhook").click()
    page.wait_for_url(f"**/orgs/{slug}/webhooks/*/")
    endpoint = WebhookEndpoint.objects.get(tenant__slug=slug)
    secret = page.locator("#webhook-secret").inner_text().strip()
    assert secret.startswith("whsec_") and endpoint.events == ["integrity.problem"]
    assert page.locator("#id_secret").input_value() == ""  # write-only: never put back in the form
    axe_check(page)

    page.get_by_role("button", name="Send a test event").click()
    page.wait_for_load_state()
    assert "Test event queued" in page.locator(".messages").inner_text()
    # The worker sends it; the log polls every 2 s until the row is no longer pending.
    delivered = page.locator('tr[data-state="delivered"]')
    delivered.wait_for(timeout=20_000)
    assert delivered.locator("td").nth(1).inner_text() == "200"
    (received,) = hook_server.requests
    assert hook_server.signature_ok(received, secret) and received.headers["X-Wharf-Event"] == "ping"
    assert page.locator("#deliveries").get_attribute("hx-trigger") is None  # polling stopped
    axe_check(page)

    page.get_by_role("button", name="Redeliver delivery").click()
    page.wait_for_load_state()
    assert "queued again" in page.locator(".messages").inner_text()
    page.wait_for_function("() => document.querySelector('tr[data-state=\"delivered\"]') !== null", timeout=20_000)
    assert len(hook_server.requests) == 2 and hook_server.requests[1].body == received.body
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.last_status_code, delivery.attempts) == ("delivered", 200, 1)

    page.goto(f"/orgs/{slug}/webhooks/")
    row = page.get_by_role("row", name=hook_server.url)
    assert "delivered" in row.inner_text() and "HTTP 200" in row.inner_text()
    axe_check(page)
    assert csp_violations(page) == []


def test_webhook_form_errors_and_a_phone_screen(page, live):
    slug = "w" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    make_tenant(slug, owner=owner)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/webhooks/new/")
    page.get_by_label("Payload URL").fill("ftp://example.com/hook")
    page.get_by_role("button", name="Create webhook").click()
    page.wait_for_load_state()
    main = page.locator("main").inner_text()
    assert "http(s) URL" in main and "This field is required." in main  # the URL, and no event chosen
    assert not WebhookEndpoint.objects.filter(tenant__slug=slug).exists()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    axe_check(page)
    assert csp_violations(page) == []
