"""What the data costs at Storj in Chromium: the usage page's section for an owner, the staff page's margin, on a phone too.

Axe (no serious or critical violation) over the section, no CSP refusal, no sideways scrolling on a phone.
"""

from __future__ import annotations

import uuid

from django.apps import apps
from django.test import Client

from billing.services import subscription_start
from billing.storj_savings import storj_overview_get
from gateway.dashboard.templatetags.wharf import usd
from gateway.registry.models import Repository
from gateway.registry.services.manifests import manifest_delete
from tests.billing.conftest import seed_migration
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def _seed():
    """A tenant on the Pro plan with a kept image and an untagged one (GC's to free)."""
    slug = "sc" + uuid.uuid4().hex[:8]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    reg.push_image("app", "v1", [b"kept layer " * 100])
    reg.push_image("app", "old", [b"garbage " * 9000])
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference="old", actor="test")
    seed_migration.seed(apps, None)  # the live server's transactional flush took the seeded plans
    subscription_start(tenant=tenant, plan_code="pro")
    return tenant, owner


def test_an_owner_reads_what_the_data_costs_at_storj(page, live):
    tenant, owner = _seed()
    sign_in(page, owner)
    page.goto(f"/orgs/{tenant.slug}/usage/")
    section = page.get_by_role("region", name="What your data costs at Storj")
    assert section.is_visible()
    overview = storj_overview_get(tenant=tenant)
    assert page.locator("#storj-total").inner_text() == usd(overview.cost.total)
    assert "The Pro plan costs $9.00 a month." in page.locator("#storj-plan").inner_text()
    # The tag the seed deleted: a line of its own, and the rest of Storj's 30 days billed with the deletion.
    deleted = page.locator("#storj-deleted")
    assert deleted.is_visible() and deleted.locator("th").inner_text() == "Deleted this month"
    assert deleted.locator("td").first.inner_text().startswith("1 object, ")
    assert deleted.locator("td").last.inner_text() == usd(overview.cost.lines["deleted_storage"])
    fee = page.locator("#storj-minimum-duration")
    assert fee.is_visible() and "deleted younger than 30 days" in fee.inner_text()
    assert fee.locator("td").last.inner_text() == usd(overview.cost.lines["minimum_duration"]) != "$0.00"
    gc_row = page.locator("#storj-savings tbody tr").first
    assert gc_row.locator("th").inner_text() == "Garbage collection ran now" and gc_row.locator("td").first.inner_text() == "3"
    # Just pushed: all three are younger than 30 days, and the page says Storj bills them to that age.
    assert "younger than 30 days" in gc_row.inner_text()
    axe_check(page, context="#storj-cost")
    axe_check(page)
    assert csp_violations(page) == []


def test_staff_see_the_margin_and_the_section_fits_a_phone(new_context, page, live):
    tenant, owner = _seed()
    sign_in(page, UserFactory(username="op-" + tenant.slug, is_staff=True))
    page.goto(f"/staff/tenants/{tenant.slug}/")
    assert page.get_by_role("region", name="What this tenant's data costs at Storj").is_visible()
    overview = storj_overview_get(tenant=tenant)
    assert page.locator("#storj-margin").inner_text() == usd(overview.cost.margin)
    axe_check(page)
    assert csp_violations(page) == []
    phone = new_context(phone=True).new_page()
    sign_in(phone, owner)
    phone.goto(f"/orgs/{tenant.slug}/usage/")
    phone.locator("#storj-cost").scroll_into_view_if_needed()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(phone, context="#storj-cost")
    phone.screenshot(path="var/screenshots/test_storj_cost_phone.png", full_page=True)
