"""The staff console in Chromium: an operator suspends a tenant with a reason, finds it in the list, reactivates it; the jobs pages.

Every page opened passes axe (no serious or critical violation) and logs no CSP refusal.
"""

from __future__ import annotations

import uuid

from django.test import Client

from accounts.models import Tenant
from gateway.dashboard.templatetags.wharf import bytes_binary
from gateway.registry.models import JobRun
from gateway.registry.selectors import usage_bytes
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def _seed_tenant() -> Tenant:
    """A fresh tenant (unique slug) with one image pushed through the registry."""
    slug = "st" + uuid.uuid4().hex[:8]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}").push_image("app", "v1", [slug.encode() * 500])
    return tenant


def _checked(page) -> None:
    axe_check(page)
    assert csp_violations(page) == []


def test_operator_suspends_finds_and_reactivates_a_tenant(page, live):
    tenant = _seed_tenant()
    slug = tenant.slug
    sign_in(page, UserFactory(username="op-" + slug, is_staff=True))
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm prompts

    page.goto("/orgs/")
    page.get_by_role("link", name="Staff console").click()
    page.wait_for_url("**/staff/")
    assert page.get_by_role("heading", name="Queue depths").is_visible()
    _checked(page)

    page.get_by_role("navigation", name="Staff console").get_by_role("link", name="Tenants").click()
    page.wait_for_url("**/staff/tenants/")
    page.get_by_label("Search slug or name").fill(slug[:7])  # htmx searches as the operator types
    page.wait_for_url(f"**/staff/tenants/?q={slug[:7]}*")
    results = page.locator("#tenant-results")
    results.get_by_role("link", name=slug).wait_for()
    assert results.locator("tbody tr").count() == 1
    stored = usage_bytes(tenant=tenant)
    assert results.get_by_title(f"{stored:,} bytes").inner_text() == bytes_binary(stored)
    _checked(page)

    results.get_by_role("link", name=slug).click()
    page.wait_for_url(f"**/staff/tenants/{slug}/")
    _checked(page)
    page.get_by_label("Reason").fill("phishing images reported by CERT")
    page.get_by_role("button", name="Suspend tenant").click()
    page.get_by_role("status").get_by_text(f"{slug} is suspended").wait_for()
    assert page.get_by_text("phishing images reported by CERT").first.is_visible()
    assert Tenant.objects.get(pk=tenant.pk).status == "suspended"
    _checked(page)

    page.goto("/staff/tenants/?status=suspended")
    row = page.locator("tbody tr", has=page.get_by_role("link", name=slug))
    assert "suspended" in row.inner_text() and "phishing images reported by CERT" in row.inner_text()
    _checked(page)

    row.get_by_role("link", name=slug).click()
    reactivate = page.get_by_role("button", name="Reactivate tenant")
    reactivate.focus()
    page.keyboard.press("Enter")  # by keyboard alone (the confirm dialog is accepted above)
    page.get_by_role("status").get_by_text(f"{slug} is active again").wait_for()
    assert Tenant.objects.get(pk=tenant.pk).status == "active"
    assert page.get_by_role("button", name="Suspend tenant").is_visible()
    ops = page.locator("section", has=page.get_by_role("heading", name="Operator actions"))
    assert ops.get_by_text("tenant.suspend").is_visible() and ops.get_by_text("tenant.reactivate").is_visible()
    _checked(page)


def test_operator_filters_jobs_and_opens_one(page, live, new_context):
    tenant = _seed_tenant()
    failed = JobRun.objects.create(
        kind="gc", tenant=tenant, state=JobRun.State.FAILED, counts={"blobs_marked": 7}, errors=[{"error": "storage timed out"}]
    )
    done = JobRun.objects.create(kind="audit", tenant=tenant, state=JobRun.State.SUCCEEDED, counts={"blobs_checked": 2})
    staff = UserFactory(username="op-" + tenant.slug, is_staff=True)
    sign_in(page, staff)

    page.goto(f"/staff/jobs/?tenant={tenant.slug}")
    results = page.locator("#job-results")
    assert results.get_by_role("link", name=f"#{done.pk}").is_visible()
    _checked(page)
    page.get_by_label("State").select_option("failed")  # htmx filters on change
    page.wait_for_url("**state=failed*")
    results.get_by_role("link", name=f"#{done.pk}").wait_for(state="detached")
    assert results.get_by_text("storage timed out").is_visible()
    _checked(page)

    results.get_by_role("link", name=f"#{failed.pk}").click()
    page.wait_for_url(f"**/staff/jobs/{failed.pk}/")
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Job #{failed.pk}: gc")
    assert page.get_by_role("row", name="blobs_marked 7").is_visible()
    _checked(page)

    phone = new_context(phone=True).new_page()
    phone.csp_errors = []
    phone.on("console", lambda msg: phone.csp_errors.append(msg.text) if msg.type == "error" else None)
    sign_in(phone, staff)
    phone.goto(f"/staff/tenants/{tenant.slug}/")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _checked(phone)
    phone.screenshot(path="var/screenshots/test_staff_tenant_on_a_phone.png", full_page=True)
