"""Robots in a real browser: create one, read its secret from the page, push an image with skopeo as the robot,
and see "last used" on reload. Personal access tokens: create, read once, revoke."""

from __future__ import annotations

import uuid

from accounts.models import RobotAccount
from gateway.registry.models import Tag
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.e2e.harness import build_oci_layout, skopeo
from tests.factories import UserFactory, make_tenant


def test_create_robot_and_push_with_its_secret(page, live, tmp_path):
    slug = "r" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/robots/")
    axe_check(page)
    page.get_by_label("Name").fill("ci")
    page.get_by_label("push — push images").check()
    page.get_by_label("Expires in (days)").fill("30")
    page.get_by_role("button", name="Create robot").click()
    page.wait_for_url(f"**/orgs/{slug}/robots/")
    secret = page.locator("#secret-value").inner_text().strip()
    username = page.locator("#secret-username").inner_text().strip()
    assert username == f"{slug}+ci"
    assert page.locator("#secret-login").inner_text().strip().endswith(f"-u {slug}+ci --password-stdin")
    row = page.get_by_role("row", name=f"{slug}+ci")
    assert row.locator(".last-used").inner_text().strip() == "never"
    axe_check(page)

    info = build_oci_layout(tmp_path / "oci", layers=[2048], seed=21)
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"{username}:{secret}",
        info.oci_ref, f"docker://{live.host}/{slug}/app:v1", timeout=120,
    )  # fmt: skip
    assert Tag.objects.filter(repository__tenant=tenant, repository__name="app", name="v1").exists()

    page.reload()
    assert page.locator("#secret-value").count() == 0  # shown once
    used = row.locator(".last-used time")
    assert used.count() == 1 and used.get_attribute("datetime").startswith(
        str(RobotAccount.objects.get(tenant=tenant).last_used_at.year)
    )
    axe_check(page)
    row.get_by_role("link", name="Edit ci").click()
    page.wait_for_url(f"**/orgs/{slug}/robots/ci/")
    page.get_by_label("Repository patterns").fill("app")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/orgs/{slug}/robots/")
    assert RobotAccount.objects.get(tenant=tenant).repositories == ["app"]
    axe_check(page)
    assert csp_violations(page) == []


def test_personal_access_token_create_and_revoke(page, live):
    user = UserFactory(username="u" + uuid.uuid4().hex[:10])
    sign_in(page, user)
    page.goto("/orgs/")
    page.get_by_role("link", name="Access tokens").click()
    page.wait_for_url("**/settings/tokens/")
    axe_check(page)
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Repository patterns").fill("team/*")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_url("**/settings/tokens/")
    secret = page.locator("#secret-value").inner_text().strip()
    assert secret.startswith("wharf_pat_")
    assert page.get_by_role("row", name="laptop").is_visible()
    axe_check(page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke laptop").click()
    page.wait_for_load_state()
    assert "Token revoked" in page.locator(".messages").inner_text()
    assert secret not in page.content()
    axe_check(page)
    assert csp_violations(page) == []
