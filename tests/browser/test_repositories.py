"""Getting started, create organisation, the repository list and page, in Chromium against the live server.

Images are pushed for real (tests.helpers.Reg through /v2/, committed: `live` makes the test
transactional), and what a page must show is computed from what was pushed.
"""

from __future__ import annotations

import re

from django.test import Client
from playwright.sync_api import expect

from accounts.models import Tenant
from gateway.registry.models import Tag
from tests.browser.conftest import axe_check, csp_violations, screenshot, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic

CONFIG = b'{"architecture":"amd64","os":"linux"}'


def org(slug: str):
    """A tenant `slug` with its owner (username `slug`-owner) and a registry client pushing as that owner."""
    owner = UserFactory(username=f"{slug}-owner")
    make_tenant(slug, owner=owner)
    return owner, Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")


def mark_page(page) -> None:
    """Tag the current document; `same_document(page)` is False after any reload or navigation."""
    page.evaluate("window.__wharfMark = 1")


def same_document(page) -> bool:
    return page.evaluate("window.__wharfMark === 1")


def test_first_push_appears_on_getting_started_without_reload(page, live):
    owner, reg = org("br-start")
    sign_in(page, owner)
    page.goto("/orgs/br-start/")
    page.wait_for_url("**/orgs/br-start/start/")  # no repository yet: the overview sends us here
    assert page.get_by_text("Waiting for your first push").is_visible()
    login = page.locator("#cmd-login").inner_text()
    assert login.startswith("docker login ") and login.endswith(f"-u {owner.username}")
    push = page.locator("#cmd-push").inner_text()
    domain = login.split()[2]
    assert push == f"docker push {domain}/br-start/my-image:latest"
    assert page.locator("#endpoint-host").inner_text().startswith(f"br-start.{domain}/")  # the live server serves the host form
    axe_check(page)
    mark_page(page)
    reg.push_image("team/app", "v1", [b"first-layer"])
    link = page.locator("#first-push a", has_text="team/app")
    link.wait_for(timeout=10_000)  # polled every 3 s
    assert same_document(page)
    assert page.locator("#first-push code").inner_text() == "v1"
    assert page.locator("#first-push[hx-trigger]").count() == 0  # polling stopped
    axe_check(page)
    link.click()
    page.wait_for_url("**/orgs/br-start/repositories/team/app/")
    assert csp_violations(page) == []


def test_repositories_search_updates_the_table_in_place(page, live):
    owner, reg = org("br-list")
    for name in ("team/app", "team/web", "tools/cli"):
        reg.push_image(name, "v1", [name.encode()])
    sign_in(page, owner)
    page.goto("/orgs/br-list/repositories/")
    rows = page.locator("#repo-results tbody tr")
    assert rows.count() == 3
    axe_check(page)
    mark_page(page)
    page.get_by_label("Search").fill("team")
    expect(rows).to_have_count(2)
    assert same_document(page)
    assert rows.locator("th").all_inner_texts() == ["team/app", "team/web"]
    page.get_by_label("Sort by").select_option("-name")
    expect(rows.first.locator("th")).to_have_text("team/web")
    page.get_by_label("Match").select_option("prefix")
    page.get_by_label("Search").fill("cli")
    page.get_by_text("No repository matches").wait_for()
    assert same_document(page) and "q=cli" in page.url
    axe_check(page)
    assert csp_violations(page) == []


def test_repository_page_shows_tag_platform_and_size_and_fits_a_phone(page, new_context, live):
    owner, reg = org("br-repo")
    layer = b"a layer of some size" * 100
    digest, payload = reg.push_image("team/app", "v1", [layer])
    sign_in(page, owner)
    page.goto("/orgs/br-repo/repositories/team/app/")
    row = page.locator("table.tags tbody tr").first
    assert row.locator("th code").inner_text() == "v1"
    assert row.locator("td").nth(1).inner_text().strip() == "linux/amd64"
    size = row.locator("td.num")
    assert size.get_attribute("title").startswith(f"{len(payload) + len(CONFIG) + len(layer)} bytes")
    assert size.inner_text() == f"{(len(payload) + len(CONFIG) + len(layer)) / 1024:.1f} KiB"
    assert row.locator("td.digest a").get_attribute("title") == digest
    pull = page.locator("#pull-digest").inner_text()
    assert pull.startswith("docker pull ") and pull.endswith(f"/br-repo/team/app@{digest}")
    axe_check(page)
    phone = new_context(phone=True).new_page()
    sign_in(phone, owner)
    phone.goto("/orgs/br-repo/repositories/team/app/")
    assert phone.locator("table.tags th code").first.inner_text() == "v1"
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(phone)
    screenshot(phone, "test_repository_page_phone_390")
    assert csp_violations(page) == []


def test_delete_a_tag_through_its_confirmation(page, live):
    owner, reg = org("br-del")
    digest, payload = reg.push_image("team/app", "v1", [b"only-layer"])
    reg.push_image("team/app", "v2", [b"second-layer"])
    sign_in(page, owner)
    page.goto("/orgs/br-del/repositories/team/app/")
    page.get_by_role("link", name="Delete tag v1").click()
    page.wait_for_url("**/-/tags/v1/delete/")
    frees = page.locator(".frees strong")
    # v2 shares the config blob (same CONFIG): only v1's manifest and its own layer go
    assert frees.get_attribute("title") == f"{len(payload) + len(b'only-layer')} bytes"
    axe_check(page)
    page.get_by_role("button", name="Delete tag v1").click()
    page.wait_for_url("**/orgs/br-del/repositories/team/app/")
    assert page.get_by_role("status").inner_text() == "Deleted tag v1 of team/app."
    assert page.locator("table.tags tbody th code").all_inner_texts() == ["v2"]
    assert list(Tag.objects.filter(tenant__slug="br-del").values_list("name", flat=True)) == ["v2"]
    axe_check(page)
    assert csp_violations(page) == []


def test_create_an_organisation_with_the_slug_checked_as_typed(page, live):
    owner, _ = org("br-taken")
    sign_in(page, owner)
    page.goto("/orgs/")
    page.get_by_role("link", name="Create an organisation").click()
    page.wait_for_url("**/orgs/new/")
    axe_check(page)
    check = page.locator("#slug-check")
    slug = page.get_by_label("Slug")
    slug.fill("Bad_Slug")
    check.get_by_text(re.compile("Invalid.*DNS label")).wait_for()
    slug.fill("br-taken")
    check.get_by_text(re.compile("Taken")).wait_for()
    slug.fill("br-fresh")
    check.get_by_text(re.compile("Available")).wait_for()
    axe_check(page)
    page.get_by_label("Display name").focus()
    page.keyboard.type("Fresh Co")
    page.keyboard.press("Enter")  # the keyboard alone submits
    page.wait_for_url("**/orgs/br-fresh/start/")
    assert "Organisation br-fresh created" in page.get_by_role("status").first.inner_text()
    assert Tenant.objects.get(slug="br-fresh").name == "Fresh Co"
    axe_check(page)
    assert csp_violations(page) == []
