"""What no other browser test drove: the audit log's CSV downloaded in Chromium, and the htmx fragments that had no test.

Fragments (grep hx-get/hx-post/hx-trigger in templates/): the policies page's dry run (hx-get into
#plan), the immutable-rule editor's preview as you type (hx-post, `input delay`), and the staff
console's queue depths (polled every 5 s). Each test marks the window before acting and checks the mark
afterwards: the fragment changed the page in place, with no reload. (The slug check, the first push, the GC
job panel, the webhook log, the repository search, the retention preview and the staff filters have
their own tests.)
"""

from __future__ import annotations

import csv
import json
import uuid

from django.conf import settings
from django.test import Client

from accounts.audit import audit_record
from accounts.models import AuditEvent
from gateway.core.queues import celery_queue_names
from gateway.dashboard.views.audit import CSV_COLUMNS
from gateway.registry.models import ImmutableTagRule
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import retention_policy_set
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic

NO_RELOAD_MARK = "() => { window.__noReload = true; }"
STILL_MARKED = "() => window.__noReload === true"


def _org(prefix: str, *, staff: bool = False):
    slug = prefix + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    owner = UserFactory(username="o" + slug, is_staff=staff)
    return slug, owner, make_tenant(slug, owner=owner)


def _checked(page) -> None:
    axe_check(page)
    assert csp_violations(page) == []


def test_the_audit_csv_downloads_with_the_filtered_events(page, live):
    slug, owner, tenant = _org("c")
    for actor, action, target, detail in [
        ("olivia", "robot.create", "ci", {"scopes": ["pull"]}),
        ("rita", "tag.delete", "team/app:v1", {}),
        ("olivia", "robot.rotate", 'ci, the "main" one', {"note": "commas, quotes"}),
        ("rita", "membership.set", "sam", {"role": "writer"}),
    ]:
        audit_record(tenant=tenant, actor=actor, action=action, target=target, detail=detail)
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/audit/")
    page.get_by_label("Actor").fill("olivia")
    page.get_by_label("Action").fill("robot.")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**action=robot.**")
    shown = page.locator("#audit-events tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).slice(1, 4).map(c => c.textContent.trim()))"
    )
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename == f"{slug}-audit-events.csv"
    with open(download.path(), newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == CSV_COLUMNS
    expected = AuditEvent.objects.filter(tenant=tenant, actor="olivia", action__startswith="robot.").order_by(
        "-created_at", "-pk"
    )
    assert [int(r[0]) for r in rows] == [e.pk for e in expected] and len(rows) == 2
    assert [r[2:5] for r in rows] == shown == [["olivia", "robot.rotate", 'ci, the "main" one'], ["olivia", "robot.create", "ci"]]
    assert [json.loads(r[8]) for r in rows] == [{"note": "commas, quotes"}, {"scopes": ["pull"]}]
    assert all(r[1].endswith("Z") and r[5] == "true" for r in rows)
    assert "action=robot." in page.url  # the download left the page where it was
    _checked(page)


def test_the_dry_run_opens_in_place(page, live):
    slug, owner, tenant = _org("d")
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    for name in ("v1", "v2", "v3"):
        reg.push_image("team/app", name, [f"{slug} {name}".encode()])
    retention_policy_set(tenant=tenant, keep_last=1)
    immutable_rule_create(tenant=tenant, repository_pattern="team/*", tag_pattern="v1", actor="seed")
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/policies/")
    assert page.locator("#plan").inner_html().strip() == ""
    page.evaluate(NO_RELOAD_MARK)
    page.get_by_role("link", name="Show the dry run").click()
    page.locator("#plan .plan-summary").wait_for()
    assert page.evaluate(STILL_MARKED) and page.url.endswith(f"/orgs/{slug}/policies/")  # swapped in, not navigated
    deleted = page.locator("#plan table.plan-delete tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)")
    protected = page.locator("#plan table.plan-immutable tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tag)")
    assert set(deleted) == {"team/app:v2"} and set(protected) == {"team/app:v1"}
    assert page.locator("#plan .plan-summary").inner_text().startswith("1 tag would be deleted")
    _checked(page)


def test_the_rule_preview_follows_the_typing(page, live):
    slug, owner, tenant = _org("r")
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    for repo, name in (("team/app", "v1"), ("team/app", "v2"), ("tools/ci", "v1")):
        reg.push_image(repo, name, [f"{slug} {repo} {name}".encode()])
    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/policies/immutable/new/")
    page.evaluate(NO_RELOAD_MARK)
    matches = page.locator("#preview table.rule-matches tbody tr")
    page.get_by_label("Tag pattern").press_sequentially("v1")  # typing alone: htmx posts the preview after a pause
    page.wait_for_function("() => document.querySelectorAll('#preview table.rule-matches tbody tr').length === 2")
    assert set(matches.evaluate_all("rows => rows.map(r => r.dataset.tag)")) == {"team/app:v1", "tools/ci:v1"}
    page.get_by_label("Repository pattern").fill("team/*")
    page.wait_for_function("() => document.querySelectorAll('#preview table.rule-matches tbody tr').length === 1")
    assert matches.evaluate_all("rows => rows.map(r => r.dataset.tag)") == ["team/app:v1"]
    assert page.evaluate(STILL_MARKED) and page.url.endswith("/policies/immutable/new/")
    assert not ImmutableTagRule.objects.filter(tenant=tenant).exists()  # a preview saves nothing
    _checked(page)


def test_the_queue_depths_refresh_themselves(page, live):
    import redis

    _, staff, _ = _org("q", staff=True)
    queue = celery_queue_names()[0]
    marker = b"wharf-test-fragments-" + uuid.uuid4().hex.encode()  # never a real message: removed again below
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        sign_in(page, staff)
        page.goto("/staff/")
        cell = page.locator("#queues tbody tr", has=page.locator(f"code:text-is('{queue}')")).locator("td")
        before = int(cell.inner_text().replace(",", ""))
        page.evaluate(NO_RELOAD_MARK)
        client.rpush(queue, *([marker] * 3))
        page.wait_for_function(
            "([q, n]) => [...document.querySelectorAll('#queues tbody tr')].some("
            "r => r.querySelector('code').textContent === q && r.querySelector('td').textContent.trim() === String(n))",
            arg=[queue, before + 3],
            timeout=12_000,  # polled every 5 s
        )
        assert page.evaluate(STILL_MARKED)
        _checked(page)
    finally:
        client.lrem(queue, 0, marker)
        client.close()
