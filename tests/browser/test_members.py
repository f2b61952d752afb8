"""Members in a real browser: the owner invites an email, the invitee opens the link in their own browser and accepts,
and the owner sees them in the list."""

from __future__ import annotations

import re
import uuid

from accounts.models import Membership
from accounts.services import access_token_issue, robot_create
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant


def watched(pg):
    """A page of another context, collecting console errors as the `page` fixture does (for csp_violations)."""
    pg.csp_errors = []
    pg.on("console", lambda msg: pg.csp_errors.append(msg.text) if msg.type == "error" else None)
    return pg


def test_invite_accept_in_a_second_browser(page, live, new_context):
    slug = "m" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    invitee = UserFactory(username="i" + slug, email=f"i{slug}@example.com")

    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/members/")
    axe_check(page)
    page.get_by_label("Email address").fill(invitee.email)
    page.get_by_label("Role", exact=True).select_option("writer")
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_url(f"**/orgs/{slug}/members/")
    link = page.locator("#invite-link").inner_text().strip()
    assert "/invitations/wharf_inv_" in link
    assert page.get_by_role("row", name=invitee.email).is_visible()  # pending, with its role
    axe_check(page)

    other = watched(new_context().new_page())
    sign_in(other, invitee)
    other.goto(link)
    assert other.get_by_role("heading", level=1).inner_text().startswith("Join")
    assert "writer" in other.locator("main").inner_text()
    axe_check(other)
    other.get_by_role("button", name="Accept").click()
    other.wait_for_url(re.compile(rf"/orgs/{slug}/(start/)?$"))  # an organisation with no image opens on Getting started
    assert f"You joined {slug} as writer." in other.locator(".messages").inner_text()
    axe_check(other)
    assert Membership.objects.get(tenant=tenant, user=invitee).role == "writer"

    page.reload()
    row = page.get_by_role("row", name=invitee.username)
    assert row.is_visible() and row.locator("select").input_value() == "writer"
    assert page.locator("#invite-link").count() == 0  # the link was shown once
    assert "No pending invitations." in page.locator("main").inner_text()
    axe_check(page)
    assert csp_violations(page) == [] and csp_violations(other) == []


def test_pages_on_a_phone_and_the_last_owner(page, live):
    slug = "m" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/members/")
    page.once("dialog", lambda dialog: dialog.accept())  # the data-confirm question
    page.get_by_role("button", name=f"Remove {owner.username}").click()
    page.wait_for_load_state()
    assert "is the last owner of" in page.locator(".messages").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    axe_check(page)
    robot_create(tenant=tenant, name="ci", scopes=["pull"], repositories=["team/*"])
    access_token_issue(user=owner, name="laptop")
    for path in (f"/orgs/{slug}/robots/", "/settings/tokens/"):  # the credential tables fit a phone too
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        axe_check(page)
    assert csp_violations(page) == []
