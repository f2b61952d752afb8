"""The dashboard frame in a real browser: the organisation page, the switcher, the phone layout, axe and the CSP."""

from __future__ import annotations

from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant


def test_org_page_in_chromium_is_accessible_and_breaks_no_csp(page, live):
    owner = UserFactory(username="frame-owner")
    make_tenant("frame-co", owner=owner)
    sign_in(page, owner)
    page.goto("/orgs/")
    page.get_by_role("link", name="frame-co").first.click()
    page.wait_for_url("**/orgs/frame-co/start/")  # no repository yet: the overview sends it to Getting started
    assert page.get_by_role("heading", level=1).inner_text() == "Getting started"
    assert csp_violations(page) == []
    axe_check(page)
    # The switcher opens from the keyboard alone.
    page.get_by_text("frame-co", exact=True).first.focus()
    page.keyboard.press("Enter")
    assert page.get_by_role("link", name="All organisations").is_visible()
    assert csp_violations(page) == []


def test_frame_fits_a_phone(new_context, live):
    owner = UserFactory(username="frame-phone")
    make_tenant("frame-phone", owner=owner)
    pg = new_context(phone=True).new_page()
    sign_in(pg, owner)
    pg.goto("/orgs/frame-phone/")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(pg)
    pg.screenshot(path="var/screenshots/test_frame_fits_a_phone.png", full_page=True)
