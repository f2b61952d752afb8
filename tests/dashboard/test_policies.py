"""Retention policies and immutable-tag rules under /orgs/<slug>/policies/: the access matrix on every view and POST
(nothing changed on denial), validation (negative numbers, bad regexes and patterns, unknown scopes, duplicates),
race-safe edits, the dry-run preview (its list equals what the real retention run then deletes; nothing saved until
Save), immutable rules protecting tags from retention and from DELETE, constant query counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, User
from gateway.registry.models import ImmutableTagRule, RetentionPolicy, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.factories import make_token
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db

BASE = "/orgs/acme/policies/"
ADMINS = allowed("admin")
MEMBERS = allowed("reader")


def rows() -> dict[str, list]:
    """Every row a refused request (or a preview) must leave alone."""
    return {
        "policies": list(RetentionPolicy.objects.order_by("pk").values()),
        "rules": list(ImmutableTagRule.objects.order_by("pk").values()),
        "tags": list(Tag.objects.order_by("pk").values("pk", "name", "immutable")),
        "audit": list(AuditEvent.objects.order_by("pk").values("pk", "action")),
    }


@pytest.fixture
def reg(tenant) -> Reg:
    owner = User.objects.get(username="owner")
    return Reg(Client(), basic(owner.username, make_token(owner)))


@pytest.fixture
def images(tenant, reg) -> Reg:
    """team/app: v1..v5 pushed 9.5..5.5 days ago, release-1 (20 days), latest (now); lib/db: a, b."""
    for i, name in enumerate(["v1", "v2", "v3", "v4", "v5", "release-1", "latest"]):
        reg.push_image("team/app", name, [f"layer {name}".encode()])
        days = 0 if name == "latest" else (20 if name == "release-1" else 9.5 - i)
        Tag.objects.filter(repository__name="team/app", name=name).update(last_pushed_at=timezone.now() - timedelta(days=days))
    for name in ("a", "b"):
        reg.push_image("lib/db", name, [f"db {name}".encode()])
    return reg


@pytest.fixture
def repo(tenant):
    """team/app with no tags (pushing images is slow; the access matrix needs only a scope to name)."""
    return repository_ensure(tenant=tenant, name="team/app")


@pytest.fixture
def policy(tenant) -> RetentionPolicy:
    return retention_policy_set(tenant=tenant, keep_last=3)


@pytest.fixture
def rule(tenant) -> ImmutableTagRule:
    return immutable_rule_create(tenant=tenant, repository_pattern="lib/*", tag_pattern="a", actor="seed")


def _policy_form(policy: RetentionPolicy | None = None, action: str = "save", **values) -> dict:
    data: dict = {"action": action, "enabled": "on", "keep_last": "", "older_than_days": "", "untagged_days": ""}
    data |= {"delete_regex": "", "keep_regex": "", "repository": ""}
    if policy is not None:
        data |= {k: ("" if getattr(policy, k) is None else getattr(policy, k)) for k in ("keep_last", "older_than_days")}
        data |= {"version": policy.updated_at.isoformat(), "delete_regex": policy.delete_regex, "keep_regex": policy.keep_regex}
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def _rule_form(rule: ImmutableTagRule | None = None, action: str = "save", **values) -> dict:
    data = {"action": action, "repository_pattern": "", "tag_pattern": ""}
    if rule is not None:
        data |= {
            "repository_pattern": rule.repository_pattern,
            "tag_pattern": rule.tag_pattern,
            "version": rule.updated_at.isoformat(),
        }
    return data | values


def _ops(policy: RetentionPolicy, rule: ImmutableTagRule) -> list[tuple[str, str, dict | None, str]]:
    """(method, path, form, least role); a None form is a GET."""
    p, r = f"{BASE}retention/{policy.pk}/", f"{BASE}immutable/{rule.pk}/"
    return [
        ("get", BASE, None, "reader"),
        ("get", f"{BASE}plan/", None, "reader"),
        ("get", f"{BASE}retention/new/", None, "admin"),
        ("post", f"{BASE}retention/new/", _policy_form(repository="team/app", keep_last="1", action="preview"), "admin"),
        ("post", f"{BASE}retention/new/", _policy_form(repository="team/app", keep_last="1"), "admin"),
        ("get", p, None, "admin"),
        ("post", p, _policy_form(policy, keep_last="7"), "admin"),
        ("get", f"{p}delete/", None, "admin"),
        ("post", f"{p}delete/", {}, "admin"),
        ("get", f"{BASE}immutable/new/", None, "admin"),
        ("post", f"{BASE}immutable/new/", _rule_form(tag_pattern="v*", action="preview"), "admin"),
        ("post", f"{BASE}immutable/new/", _rule_form(tag_pattern="v*"), "admin"),
        ("get", r, None, "admin"),
        ("post", r, _rule_form(rule, tag_pattern="b"), "admin"),
        ("get", f"{r}delete/", None, "admin"),
        ("post", f"{r}delete/", {}, "admin"),
    ]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", range(16))
def test_access_matrix(as_caller, repo, policy, rule, caller, op):
    method, path, data, least = _ops(policy, rule)[op]
    before = rows()
    client = as_caller(caller)
    response = client.get(path) if data is None else client.post(path, data)
    if caller in allowed(least):
        assert response.status_code in (200, 302), (caller, path, response.status_code)
        saves = data is not None and data.get("action") != "preview"
        assert (rows() != before) == saves, path
        assert response.status_code == (302 if saves else 200)
    else:
        assert_denied(response, caller)
        assert rows() == before


def test_readers_see_the_policies_without_editors(as_caller, repo, policy, rule):
    page = as_caller("reader").get(BASE).content.decode()
    assert "Retention policies" in page and "lib/*" in page and "Whole organisation" in page
    assert f"{BASE}retention/" not in page and f"{BASE}immutable/" not in page
    admin_page = as_caller("admin").get(BASE).content.decode()
    assert f"{BASE}retention/{policy.pk}/" in admin_page and f"{BASE}immutable/{rule.pk}/" in admin_page


def test_the_preview_lists_exactly_what_the_real_run_then_deletes(as_caller, tenant, images):
    client = as_caller("admin")
    form = _policy_form(repository="team/app", keep_last="2", older_than_days="7", keep_regex="release-.*", action="preview")
    before = rows()
    preview = client.post(f"{BASE}retention/new/", form)
    assert preview.status_code == 200 and rows() == before  # a preview saves nothing
    listed = {(v.repository, v.name) for v in preview.context["plan"].delete}
    assert listed == {("team/app", "v1"), ("team/app", "v2"), ("team/app", "v3")}
    html = preview.content.decode()
    for v in preview.context["plan"].delete:
        assert f'data-tag="team/app:{v.name}"' in html and v.digest[:19] in html
    assert "not among the 2 most recently pushed" in html and "matches keep_regex" in html  # why deleted / why kept
    saved = client.post(f"{BASE}retention/new/", form | {"action": "save"})
    assert saved.status_code == 302 and RetentionPolicy.objects.get().keep_last == 2
    before_tags = {(t.repository.name, t.name) for t in Tag.objects.select_related("repository")}
    report = retention_apply_to_completion(tenant=tenant)
    after_tags = {(t.repository.name, t.name) for t in Tag.objects.select_related("repository")}
    assert before_tags - after_tags == listed and report.counts["tags_deleted"] == 3


def test_the_htmx_preview_is_a_partial_and_shows_what_immutable_rules_protect(as_caller, images, policy):
    immutable_rule_create(tenant=policy.tenant, repository_pattern="team/*", tag_pattern="v1", actor="seed")
    response = as_caller("admin").post(
        f"{BASE}retention/{policy.pk}/", _policy_form(policy, keep_last="1", action="preview"), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and "Would be deleted" in html
    protected = {v.name for v in response.context["plan_immutable"]}
    assert protected == {"v1"} and "immutable by immutable-tag rule" in html
    assert {v.name for v in response.context["plan"].delete} == {"v2", "v3", "v4", "v5", "release-1", "a"}


def test_invalid_values_show_in_the_htmx_preview_instead(as_caller, repo):
    response = as_caller("admin").post(
        f"{BASE}retention/new/", _policy_form(keep_last="-1", action="preview"), HTTP_HX_REQUEST="true"
    )
    assert (
        "Fix these to see the preview" in response.content.decode() and "greater than or equal to 0" in response.content.decode()
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"keep_last": "-1"}, "keep_last", "greater than or equal to 0"),
        ({"older_than_days": "-5"}, "older_than_days", "greater than or equal to 0"),
        ({"untagged_days": "36501"}, "untagged_days", "less than or equal to 36500"),
        ({"keep_last": "two"}, "keep_last", "Enter a whole number"),
        ({"delete_regex": "v(["}, "delete_regex", "not a valid regular expression"),
        ({"keep_regex": "x" * 256}, "keep_regex", "at most 255 characters"),
        ({"repository": "no/such", "keep_last": "1"}, "repository", "no repository 'no/such'"),
    ],
)
@pytest.mark.parametrize("action", ["save", "preview"])
def test_retention_validation(as_caller, repo, policy, values, field, message, action):
    before = rows()
    response = as_caller("admin").post(f"{BASE}retention/new/", _policy_form(action=action, **values))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert rows() == before


def test_a_second_policy_for_one_scope_is_a_form_error(as_caller, repo, policy):
    before = rows()
    response = as_caller("admin").post(f"{BASE}retention/new/", _policy_form(keep_last="1"))
    assert response.status_code == 200 and rows() == before
    assert "The whole organisation has a retention policy already" in " ".join(response.context["form"].errors["repository"])


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"tag_pattern": ""}, "tag_pattern", "This field is required"),
        ({"tag_pattern": "v\x01"}, "tag_pattern", "control characters"),
        ({"tag_pattern": "v" * 129}, "tag_pattern", "at most 128 characters"),
        ({"repository_pattern": "r" * 256, "tag_pattern": "v*"}, "repository_pattern", "at most 255 characters"),
        ({"repository_pattern": "lib/*", "tag_pattern": "a"}, None, "exists already"),
    ],
)
def test_rule_validation(as_caller, repo, rule, values, field, message):
    before = rows()
    response = as_caller("admin").post(f"{BASE}immutable/new/", _rule_form(**values))
    assert response.status_code == 200
    errors = response.context["form"].errors
    key = field or "__all__"
    assert key in errors and message in " ".join(errors[key]), errors
    assert rows() == before


def test_rule_preview_lists_the_tags_it_protects_and_what_it_keeps_from_retention(as_caller, images, policy):
    before = rows()
    response = as_caller("admin").post(
        f"{BASE}immutable/new/", _rule_form(repository_pattern="team/*", tag_pattern="v*", action="preview")
    )
    assert response.status_code == 200 and rows() == before
    assert {m.tag for m in response.context["matches"]} == {"v1", "v2", "v3", "v4", "v5"} and response.context["match_count"] == 5
    # keep_last=3 keeps latest, v5, v4 in team/app (and both of lib/db): the rule saves v1..v3 from deletion.
    assert {v.name for v in response.context["rescued"]} == {"v1", "v2", "v3"}
    assert {v.name for v in response.context["plan"].delete} == {"release-1"}
    assert "Kept from retention by this rule" in response.content.decode()


def test_a_saved_rule_blocks_deletion_by_hand_and_by_retention(as_caller, tenant, images, policy):
    response = as_caller("owner").post(f"{BASE}immutable/new/", _rule_form(repository_pattern="team/*", tag_pattern="v*"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="immutable_rule.create", actor="owner").exists()
    refused = images.delete("/v2/acme/team/app/manifests/v1")
    assert refused.status_code == 403 and b"DENIED" in refused.content
    retention_apply_to_completion(tenant=tenant)
    assert set(Tag.objects.filter(repository__name="team/app").values_list("name", flat=True)) == {
        "v1", "v2", "v3", "v4", "v5", "latest"
    }  # fmt: skip


def test_the_editors_open_with_the_saved_values_and_their_version(as_caller, repo, policy, rule):
    client = as_caller("admin")
    form = client.get(f"{BASE}retention/{policy.pk}/").context["form"]
    assert (form["keep_last"].value(), form["version"].value()) == (3, policy.updated_at.isoformat())
    form = client.get(f"{BASE}immutable/{rule.pk}/").context["form"]
    assert (form["tag_pattern"].value(), form["version"].value()) == ("a", rule.updated_at.isoformat())
    html = client.get(f"{BASE}retention/{policy.pk}/").content.decode()
    assert f'name="version" value="{policy.updated_at.isoformat()}"' in html and 'hx-trigger="load, input delay:400ms' in html


def test_edit_a_policy_and_a_rule(as_caller, images, policy, rule):
    client = as_caller("admin")
    assert client.post(f"{BASE}retention/{policy.pk}/", _policy_form(policy, keep_last="5", enabled=None)).status_code == 302
    policy.refresh_from_db()
    assert (policy.keep_last, policy.enabled) == (5, False)
    assert client.post(f"{BASE}immutable/{rule.pk}/", _rule_form(rule, tag_pattern="b*")).status_code == 302
    rule.refresh_from_db()
    assert rule.tag_pattern == "b*"
    assert {e.action for e in AuditEvent.objects.all()} >= {"retention_policy.update", "immutable_rule.update"}


def test_a_stale_edit_is_refused_not_lost(as_caller, images, policy, rule):
    client = as_caller("admin")
    stale_policy, stale_rule = _policy_form(policy, keep_last="9"), _rule_form(rule, tag_pattern="z")
    assert client.post(f"{BASE}retention/{policy.pk}/", _policy_form(policy, keep_last="4")).status_code == 302
    assert client.post(f"{BASE}immutable/{rule.pk}/", _rule_form(rule, tag_pattern="y")).status_code == 302
    before = rows()
    page = client.post(f"{BASE}retention/{policy.pk}/", stale_policy, follow=True).content.decode()
    assert "Someone changed this policy" in page
    page = client.post(f"{BASE}immutable/{rule.pk}/", stale_rule, follow=True).content.decode()
    assert "Someone changed this rule" in page
    assert rows() == before


def test_delete_asks_then_removes(as_caller, repo, policy, rule):
    client = as_caller("admin")
    assert "Remove the retention policy" in client.get(f"{BASE}retention/{policy.pk}/delete/").content.decode()
    assert client.post(f"{BASE}retention/{policy.pk}/delete/")["Location"] == BASE
    assert client.post(f"{BASE}immutable/{rule.pk}/delete/")["Location"] == BASE
    assert not RetentionPolicy.objects.exists() and not ImmutableTagRule.objects.exists()


def test_another_organisations_policies_are_404(as_caller, repo):
    from accounts.models import Tenant

    globex = Tenant.objects.get(slug="globex")
    theirs = retention_policy_set(tenant=globex, keep_last=1)
    their_rule = immutable_rule_create(tenant=globex, repository_pattern="", tag_pattern="x", actor="seed")
    before = rows()
    for _method, path, data, _ in _ops(theirs, their_rule)[5:]:
        if "/new/" in path:
            continue
        client = as_caller("owner")
        response = client.get(path) if data is None else client.post(path, data)
        assert response.status_code == 404, path
    assert rows() == before


def test_the_saved_dry_run_page(as_caller, images, policy):
    page = as_caller("reader").get(f"{BASE}plan/")
    assert page.status_code == 200 and {v.name for v in page.context["plan"].delete} == {"v1", "v2", "v3", "release-1"}
    partial = as_caller("reader").get(f"{BASE}plan/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'data-tag="team/app:v1"' in partial


def test_the_list_page_has_constant_queries(as_caller, tenant, repo, policy, rule, django_assert_max_num_queries):
    client = as_caller("admin")
    client.get(BASE)  # the first page after signing in also records the session's activity (dashboard/middleware.py)
    with django_assert_max_num_queries(9):
        client.get(BASE)
    for i in range(10):
        repository = repository_ensure(tenant=tenant, name=f"many/r{i}")
        retention_policy_set(tenant=tenant, repository=repository, keep_last=i)
        immutable_rule_create(tenant=tenant, repository_pattern=f"many/r{i}", tag_pattern="v*", actor="seed")
    with django_assert_max_num_queries(9):
        page = client.get(BASE).content.decode()
    assert page.count("many/r") == 20
