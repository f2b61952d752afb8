"""The billing page in a real browser (decision 0046): on a phone, axe, CSP; an owner changes the plan through the confirmation."""

from __future__ import annotations

import uuid

from django.apps import apps

from accounts.services import robot_create
from billing.services import subscription_start
from gateway.registry.models import Repository
from tests.billing.conftest import seed_migration
from tests.browser.conftest import axe_check, csp_violations, screenshot, sign_in
from tests.factories import UserFactory, make_tenant


def _seed():
    seed_migration.seed(apps, None)  # a transactional test's flush took the seeded plans
    slug = "b" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    subscription_start(tenant=tenant, plan_code="free")
    Repository.objects.create(tenant=tenant, name="app")  # 1 of 1 private repository: full
    robot_create(tenant=tenant, name="ci", scopes=["pull"])  # 1 of 1 robot: full
    return slug, owner


def test_owner_sees_the_limits_on_a_phone_and_upgrades(new_context, live):
    slug, owner = _seed()
    page = new_context(phone=True).new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: page.csp_errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/billing/")
    assert page.locator("#billing-plan").get_by_text("Free").first.is_visible()
    assert page.locator("#meter-private_repositories .quota-bar.quota-full").is_visible()
    assert page.locator("#meter-robots .quota-bar.quota-full").is_visible()
    assert page.locator("#meter-storage .quota-bar.quota-ok").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(page)
    assert csp_violations(page) == []
    screenshot(page, "test_billing_page_on_a_phone")
    page.get_by_role("link", name="Change to Pro…").click()
    page.wait_for_url(f"**/orgs/{slug}/billing/plans/pro/")
    assert "9.00 USD per month" in page.locator("main").inner_text()
    axe_check(page)
    page.get_by_role("button", name=f"Change {slug} to Pro").click()
    page.wait_for_url(f"**/orgs/{slug}/billing/")
    assert f"{slug} is now on the Pro plan." in page.locator("main").inner_text()
    assert page.locator("#meter-robots .quota-bar.quota-ok").is_visible()  # 1 of 10 robots now
    assert page.locator("#meter-private_repositories").get_by_text("unlimited").is_visible()
    assert csp_violations(page) == []
    screenshot(page, "test_billing_after_the_upgrade")
