"""Organisation settings in Chromium: change the download mode; delete an organisation with a typed confirmation."""

from __future__ import annotations

import uuid

from accounts.models import Tenant
from gateway.registry.models import JobRun
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant


def _org():
    slug = "s" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    return slug, owner, make_tenant(slug, owner=owner)


def test_change_download_mode(page, live):
    slug, owner, tenant = _org()
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/settings/")
    assert page.get_by_label("Proxied", exact=False).is_checked()
    axe_check(page)
    page.get_by_label("Redirected", exact=False).check()
    page.get_by_label("Display name").fill("Skyline Ltd")
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_load_state()
    assert "Settings saved." in page.locator(".messages").inner_text()
    assert page.get_by_label("Redirected", exact=False).is_checked()
    tenant.refresh_from_db()
    assert tenant.redirect_blob_downloads is True and tenant.name == "Skyline Ltd"
    assert "Skyline Ltd" in page.locator(".org-name").inner_text()
    # An empty name is refused with a message, and nothing changes.
    page.get_by_label("Display name").fill("")
    page.get_by_label("Proxied", exact=False).check()
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_load_state()
    assert "This field is required." in page.locator("#name-error").inner_text()
    tenant.refresh_from_db()
    assert tenant.redirect_blob_downloads is True and tenant.name == "Skyline Ltd"
    axe_check(page)
    assert csp_violations(page) == []


def test_delete_an_organisation_with_typed_confirmation(page, live):
    slug, owner, tenant = _org()
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/settings/")
    confirm = page.get_by_label("Type the organisation's slug to confirm")
    confirm.fill(slug.upper())
    page.get_by_role("button", name=f"Delete {slug}").click()
    page.wait_for_load_state()
    assert "nothing was deleted" in page.locator("#confirm-error").inner_text()
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.ACTIVE
    axe_check(page)
    page.get_by_label("Type the organisation's slug to confirm").fill(slug)
    page.get_by_role("button", name=f"Delete {slug}").click()
    page.wait_for_url("**/orgs/")
    assert f"Deleting {slug}" in page.locator(".messages").inner_text()
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.DELETING
    assert JobRun.objects.filter(kind="tenant_delete", tenant=tenant).exists()
    assert page.get_by_role("link", name=slug, exact=True).count() == 0
    axe_check(page)
    assert csp_violations(page) == []
    assert page.goto(f"/orgs/{slug}/settings/").status == 404
