"""The manifest page in Chromium: a real multi-platform index with referrers, pushed through /v2/, opened as its tree; a platform's page."""

from __future__ import annotations

import json
import uuid

from django.test import Client

from gateway.dashboard.templatetags.wharf import exact_bytes
from gateway.registry.models import Manifest
from tests.browser.conftest import axe_check, csp_violations, screenshot, sign_in
from tests.dashboard.images import push_index_with_referrers
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def _seed():
    slug = "m" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug)
    make_tenant(slug, owner=owner)
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    return slug, owner, reg, push_index_with_referrers(reg, "team/app", "1.0", arches=("amd64", "arm64"))


def test_an_index_opens_as_its_platform_tree_with_referrers(page, live):
    slug, owner, _, index = _seed()
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/repositories/team/app/manifests/{index.digest}/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Index sha256:")
    platforms = page.locator("li.node.platform")
    assert platforms.count() == 2
    amd, arm = index.platforms
    first, second = platforms.nth(0).inner_text(), platforms.nth(1).inner_text()
    assert first.startswith("linux/amd64") and amd.digest[:19] in first
    assert second.startswith("linux/arm64/v8") and arm.digest[:19] in second
    # The signature hangs under the platform it signs, the SBOM under the index itself.
    sig_type, sig = index.referrers[amd.digest][0]
    assert platforms.nth(0).locator("li.node.referrer").inner_text().startswith(sig_type)
    assert platforms.nth(1).locator("li.node.referrer").count() == 0
    sbom_type, sbom = index.referrers[index.digest][0]
    index_referrers = page.locator("li.node.index > ul > li.node.referrer")
    assert index_referrers.count() == 1 and index_referrers.inner_text().startswith(sbom_type)
    # The size shown for a platform is its config and layers, exactly (in the title).
    size = platforms.nth(0).locator(".size")
    assert size.get_attribute("title").startswith(exact_bytes(amd.image_bytes))
    assert csp_violations(page) == []
    axe_check(page)

    # A platform's own page: untagged, yet part of the tagged index (never garbage), with its layers.
    platforms.nth(1).get_by_role("link").click()
    page.wait_for_url(f"**/manifests/{arm.digest}/")
    kept = page.locator("dd.kept")
    assert kept.get_attribute("data-kept-by") == "index" and "not garbage" in kept.inner_text()
    layers = json.loads(bytes(Manifest.objects.get(digest=arm.digest).payload))["layers"]
    rows = page.locator("table.layers tbody tr")
    assert rows.count() == len(layers)
    assert rows.nth(0).get_attribute("data-digest") == layers[0]["digest"]
    assert "this repository only" in rows.nth(0).inner_text()
    assert "linux/arm64/v8" in page.locator("dl.facts").nth(1).inner_text()
    assert csp_violations(page) == []
    axe_check(page)


def test_the_pull_line_copies_and_the_page_fits_a_phone(new_context, live):
    slug, owner, _, index = _seed()
    ctx = new_context(phone=True)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(pg, owner)
    pg.goto(f"/orgs/{slug}/repositories/team/app/manifests/{index.digest}/")
    line = pg.locator("#pull-line").inner_text()
    assert line.endswith(f"/{slug}/team/app@{index.digest}") and line.startswith("docker pull ")
    pg.get_by_role("button", name="Copy the pull command").click()
    assert pg.evaluate("navigator.clipboard.readText()") == line
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    axe_check(pg)
    assert [e for e in errors if "Content Security Policy" in e] == []
    screenshot(pg, "test_manifest_page_phone")
