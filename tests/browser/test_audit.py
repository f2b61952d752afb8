"""The audit log in Chromium: filter by actor and action, a bad date's message, the CSV link carries the filters."""

from __future__ import annotations

import uuid

from accounts.audit import audit_record
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant


def _rows(page) -> list[list[str]]:
    return page.locator("#audit-events tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(c => c.textContent.trim()))"
    )


def test_filter_the_audit_log(page, live):
    slug = "a" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    for actor, action, target in [
        ("olivia", "robot.create", "ci"),
        ("rita", "tag.delete", "team/app:v1"),
        ("olivia", "robot.rotate", "ci"),
        ("rita", "membership.set", "sam"),
    ]:
        audit_record(tenant=tenant, actor=actor, action=action, target=target)
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/audit/")
    everything = _rows(page)
    assert {r[1] for r in everything} >= {"olivia", "rita"}
    axe_check(page)
    # By actor: only rita's two events, newest first.
    page.get_by_label("Actor").fill("rita")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**actor=rita**")
    assert [(r[1], r[2]) for r in _rows(page)] == [("rita", "membership.set"), ("rita", "tag.delete")]
    # An action prefix as well, by keyboard: the filters combine.
    page.get_by_label("Actor").fill("olivia")
    page.get_by_label("Action").fill("robot.")
    page.get_by_label("Action").press("Enter")
    page.wait_for_url("**action=robot.**")
    assert [(r[1], r[2]) for r in _rows(page)] == [("olivia", "robot.rotate"), ("olivia", "robot.create")]
    csv_link = page.get_by_role("link", name="Download CSV")
    assert "actor=olivia" in csv_link.get_attribute("href") and "action=robot." in csv_link.get_attribute("href")
    axe_check(page)
    assert csp_violations(page) == []
    # A date that is no date: a clear message next to the field, no list.
    page.get_by_label("Since (UTC)").fill("last tuesday")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**since=last**")
    assert "Since: Enter a valid date/time." in page.locator("#f-since-error").inner_text()
    assert page.get_by_label("Since (UTC)").get_attribute("aria-invalid") == "true"
    assert page.locator("#audit-events").count() == 0
    axe_check(page)
    assert csp_violations(page) == []
