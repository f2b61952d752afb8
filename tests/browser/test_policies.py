"""Retention and immutable-tag rules in a real browser against the live server: edit a retention policy, the preview
(htmx, as you type) lists the tags it would delete and those an immutable rule protects, save, and the real run
deletes exactly what the preview listed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from gateway.registry.models import RetentionPolicy, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def _seed():
    slug = "p" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    for age, name in enumerate(["v5", "v4", "v3", "v2", "v1"]):  # v5 newest
        reg.push_image("team/app", name, [f"{slug} {name}".encode()])
        Tag.objects.filter(tenant=tenant, name=name).update(last_pushed_at=timezone.now() - timedelta(days=age + 1))
    return slug, owner, tenant


def _tags(page, table: str) -> set[str]:
    return set(page.locator(f"#preview table.{table} tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)"))


def test_edit_a_retention_policy_with_the_preview_then_save(page, live):
    slug, owner, tenant = _seed()
    policy = retention_policy_set(tenant=tenant, keep_last=4)
    immutable_rule_create(tenant=tenant, repository_pattern="team/*", tag_pattern="v1", actor="seed")
    sign_in(page, owner)

    page.goto(f"/orgs/{slug}/policies/")
    axe_check(page)
    page.get_by_role("link", name="Whole organisation").click()
    page.wait_for_url(f"**/policies/retention/{policy.pk}/")
    axe_check(page)

    page.locator("#preview table.plan-immutable").wait_for()  # the saved policy's preview, on opening
    assert _tags(page, "plan-immutable") == {"team/app:v1"}
    page.get_by_label("Keep the last N tags").fill("2")  # typing alone updates the preview (htmx, 400 ms)
    page.get_by_text("not among the 2 most recently pushed").first.wait_for()
    deleted = _tags(page, "plan-delete")
    protected = _tags(page, "plan-immutable")
    assert deleted == {"team/app:v3", "team/app:v2"} and protected == {"team/app:v1"}
    row = page.locator('#preview tr[data-tag="team/app:v3"]')
    assert "not among the 2 most recently pushed" in row.inner_text() and "sha256:" in row.inner_text()
    assert "immutable by immutable-tag rule" in page.locator('#preview tr[data-tag="team/app:v1"]').inner_text()
    assert RetentionPolicy.objects.get(pk=policy.pk).keep_last == 4  # nothing saved by the preview
    axe_check(page)

    page.get_by_label("Never delete tags matching").fill("v3")
    page.wait_for_function(
        "() => !document.querySelector('#preview tr[data-tag=\"team/app:v3\"] td:last-child')?.textContent.includes('not among')"
    )
    deleted = _tags(page, "plan-delete")
    assert deleted == {"team/app:v2"}

    page.get_by_role("button", name="Save policy").click()
    page.wait_for_url(f"**/orgs/{slug}/policies/")
    assert "saved" in page.locator(".messages").inner_text()
    saved = RetentionPolicy.objects.get(pk=policy.pk)
    assert (saved.keep_last, saved.keep_regex) == (2, "v3")
    axe_check(page)

    before = set(Tag.objects.filter(tenant=tenant).values_list("name", flat=True))
    retention_apply_to_completion(tenant=tenant)
    after = set(Tag.objects.filter(tenant=tenant).values_list("name", flat=True))
    assert {f"team/app:{name}" for name in before - after} == deleted
    assert csp_violations(page) == []


def test_a_new_immutable_rule_previews_the_tags_it_protects_on_a_phone(page, live):
    slug, owner, tenant = _seed()
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/policies/immutable/new/")
    page.get_by_label("Tag pattern").fill("v[12]")
    page.get_by_role("button", name="Preview").click()  # the button works without waiting for htmx too
    page.wait_for_load_state()
    assert _tags(page, "rule-matches") == {"team/app:v1", "team/app:v2"}
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    axe_check(page)
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(f"**/orgs/{slug}/policies/")
    assert page.get_by_role("row", name="v[12]").is_visible()
    axe_check(page)
    assert csp_violations(page) == []
