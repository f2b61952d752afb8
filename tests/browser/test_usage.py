"""The usage page in Chromium: real pushed and pulled images, the charts' data points against their tables, the quota warning."""

from __future__ import annotations

import re
import uuid

from django.test import Client

from gateway.registry.usage_selectors import usage_storage_get
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def _seed(event_stream):
    """A tenant with two pushed images sharing a layer, three pulls delivered to the usage meter, a quota 90 % used."""
    slug = "u" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    reg.push_image("team/app", "v1", [b"shared-base" * 50, b"app-only" * 200])
    reg.push_image("team/web", "v1", [b"shared-base" * 50, b"web-only" * 30])
    for repo in ("team/app", "team/app", "team/web"):
        assert reg.get(f"/v2/{slug}/{repo}/manifests/v1").status_code == 200
    event_stream()
    stored = usage_storage_get(tenant=tenant)["stored_bytes"]
    tenant.storage_quota_bytes = stored * 100 // 90
    tenant.save(update_fields=["storage_quota_bytes"])
    return slug, owner, tenant


def _cells(page, table_id: str) -> list[list[str]]:
    return page.locator(f"#{table_id} tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.querySelectorAll('th, td')).map(c => c.textContent.trim()))"
    )


def test_usage_charts_show_the_pushed_and_pulled_images_and_match_their_tables(page, live, event_stream):
    slug, owner, tenant = _seed(event_stream)
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/usage/")
    assert page.get_by_role("heading", level=1).inner_text() == "Usage"
    # The storage chart: today's point for each of stored, unique and shared, equal to today's table row.
    storage_svg = page.get_by_role("img", name="Stored, unique and shared bytes per day")
    point_titles = storage_svg.locator("circle.chart-point title").all_text_contents()
    assert len(point_titles) == 3
    page.get_by_text("Storage per day as a table").click()
    today = _cells(page, "storage-table")[-1]
    day = today[0].split()[0]
    assert point_titles == [f"{day}: Stored {today[1]}", f"{day}: Unique {today[2]}", f"{day}: Shared {today[3]}"]
    # Egress and pulls: one bar (today) each, matching the traffic table.
    page.get_by_text("Egress and pulls per day as a table").click()
    traffic = {row[0]: row[1:] for row in _cells(page, "traffic-table")}
    egress_bars = page.get_by_role("img", name="Egress bytes per day").locator("rect.chart-bar title").all_text_contents()
    pulls_bars = (
        page.get_by_role("img", name="Pulls (manifest downloads) per day").locator("rect.chart-bar title").all_text_contents()
    )
    assert egress_bars == [f"{day}: {traffic[day][0]}"] and pulls_bars == [f"{day}: 3"] and traffic[day][1] == "3"
    assert [r[:2] for r in _cells(page, "top-pulled")] == [["team/app", "2"], ["team/web", "1"]]
    # The quota is 90 % used: the bar and the warning say so.
    assert page.locator(".quota-bar.quota-warn").is_visible()
    assert "Over 80 % of the quota is used" in page.locator(".quota-warning").inner_text()
    assert re.search(r"\(90 %\)|\(89 %\)", page.locator(".quota-text").inner_text())
    axe_check(page)
    assert csp_violations(page) == []
    # The range switch: 90 days in both tables.
    page.get_by_role("link", name="90 days").click()
    page.wait_for_url("**/usage/?days=90")
    assert page.get_by_role("link", name="90 days").get_attribute("aria-current") == "true"
    assert len(_cells(page, "storage-table")) == 90 and len(_cells(page, "traffic-table")) == 90
    axe_check(page)
    assert csp_violations(page) == []


def test_usage_fits_a_phone(new_context, live, event_stream):
    slug, owner, _ = _seed(event_stream)
    pg = new_context(phone=True).new_page()
    sign_in(pg, owner)
    pg.goto(f"/orgs/{slug}/usage/")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(pg)
    pg.screenshot(path="var/screenshots/test_usage_fits_a_phone.png", full_page=True)
