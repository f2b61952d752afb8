"""Retention policies: /api/v1/tenants/{slug}/retention-policies[/{id}|/dry-run] — CRUD, ETag/If-Match, validation,
the dry run (equal to what the real run then deletes), filters, access matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Membership
from gateway.registry.models import ImmutableTagRule, Repository, RetentionPolicy, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set, tag_immutable_set
from tests.api.conftest import Api, assert_problem, token
from tests.api.test_policies import rows
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic

BASE = "/api/v1/tenants/acme/retention-policies"
DRY_RUN = f"{BASE}/dry-run"


@pytest.fixture
def images(owner, acme):
    """team/app: v1..v5 pushed 9.5..5.5 days ago, release-1 (old), latest (new); lib/db: a, b."""
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    names = ["v1", "v2", "v3", "v4", "v5", "release-1", "latest"]
    for i, name in enumerate(names):
        reg.push_image("team/app", name, [f"layer {name}".encode()])
        days = 0 if name == "latest" else (20 if name == "release-1" else 9.5 - i)
        Tag.objects.filter(repository__name="team/app", name=name).update(last_pushed_at=timezone.now() - timedelta(days=days))
    for name in ("a", "b"):
        reg.push_image("lib/db", name, [f"db {name}".encode()])
    return reg


@pytest.fixture
def policy(acme) -> RetentionPolicy:
    return retention_policy_set(tenant=acme, keep_last=3)


def _member(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"m-{role}"), scopes))


def _tags(repo: str = "team/app") -> set[str]:
    return set(Tag.objects.filter(repository__name=repo).values_list("name", flat=True))


# -- CRUD ---------------------------------------------------------------------


@pytest.mark.django_db
def test_create_get_update_delete_with_etags_and_audit(acme, images, api_write):
    created = api_write.post(BASE, {"repository": "team/app", "keep_last": 2, "keep_regex": "release-.*"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["repository"] == "team/app" and body["keep_last"] == 2 and body["enabled"] is True
    assert body["keep_regex"] == "release-.*" and body["delete_regex"] == "" and body["older_than_days"] is None
    path = f"{BASE}/{body['id']}"
    got = api_write.get(path)
    assert got.json() == body and got["ETag"] == created["ETag"]
    assert AuditEvent.objects.filter(action="retention_policy.create", actor="olivia").latest("pk").detail["keep_last"] == 2

    changed = api_write.patch(path, {"older_than_days": 7, "enabled": False}, HTTP_IF_MATCH=got["ETag"])
    assert changed.status_code == 200, changed.content
    assert (changed.json()["older_than_days"], changed.json()["enabled"], changed.json()["keep_last"]) == (7, False, 2)
    assert changed["ETag"] == api_write.get(path)["ETag"] != got["ETag"]
    assert AuditEvent.objects.filter(action="retention_policy.update").count() == 1

    tenant_wide = api_write.post(BASE, {"untagged_days": 3})
    assert tenant_wide.status_code == 201 and tenant_wide.json()["repository"] is None
    assert api_write.delete(path, HTTP_IF_MATCH=changed["ETag"]).status_code == 204
    assert list(RetentionPolicy.objects.values_list("repository", flat=True)) == [None]
    assert AuditEvent.objects.filter(action="retention_policy.delete", target=str(body["id"])).exists()


@pytest.mark.django_db
def test_one_policy_per_scope(acme, images, policy, api_write):
    api_write.post(BASE, {"repository": "team/app", "keep_last": 1})
    before = rows()
    assert "has a retention policy already" in assert_problem(api_write.post(BASE, {"keep_last": 1}), 409)["detail"]
    assert_problem(api_write.post(BASE, {"repository": "team/app", "keep_last": 5}), 409)
    assert rows() == before


@pytest.mark.django_db
def test_if_match_is_required_and_must_be_current(acme, policy, api_write):
    path = f"{BASE}/{policy.pk}"
    stale = api_write.get(path)["ETag"]
    retention_policy_set(tenant=acme, keep_last=4)  # someone else changed it
    before = rows()
    assert_problem(api_write.patch(path, {"keep_last": 9}), 428)
    assert_problem(api_write.patch(path, {"keep_last": 9}, HTTP_IF_MATCH=stale), 412)
    assert_problem(api_write.delete(path), 428)
    assert_problem(api_write.delete(path, HTTP_IF_MATCH=stale), 412)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"keep_last": -1}, ["keep_last"]),
        ({"keep_last": "many"}, ["keep_last"]),
        ({"older_than_days": 36_501}, ["older_than_days"]),
        ({"untagged_days": -1}, ["untagged_days"]),
        ({"delete_regex": "("}, ["delete_regex"]),
        ({"keep_regex": "[a-"}, ["keep_regex"]),
        ({"keep_regex": "a" * 256}, ["keep_regex"]),
        ({"enabled": "perhaps"}, ["enabled"]),
        ({"repository": "nope", "keep_last": 1}, ["repository"]),
    ],
)
def test_validation_changes_nothing(acme, images, policy, api_write, body, fields):
    before = rows()
    problem = assert_problem(api_write.post(BASE, {**body, "repository": body.get("repository", "team/app")}), 400)
    assert [e["field"] for e in problem["errors"]] == fields
    if "repository" not in body:
        path = f"{BASE}/{policy.pk}"
        problem = assert_problem(api_write.patch(path, body, HTTP_IF_MATCH=api_write.get(path)["ETag"]), 400)
        assert [e["field"] for e in problem["errors"]] == fields
        problem = assert_problem(api_write.post(DRY_RUN, {"policy": body}), 400)
        assert [e["field"] for e in problem["errors"]] == [f"policy.{f}" for f in fields]
    assert rows() == before


@pytest.mark.django_db
def test_list_filters_and_query_count(acme, images, api_read, django_assert_max_num_queries):
    retention_policy_set(tenant=acme, keep_last=1)
    for i in range(12):
        repository_ensure(tenant=acme, name=f"r{i}")
        retention_policy_set(tenant=acme, repository=Repository.objects.get(name=f"r{i}"), enabled=i % 2 == 0, keep_last=i)
    body = api_read.get(BASE, limit=5).json()
    assert [p["repository"] for p in body["results"]] == [None, "r0", "r1", "r2", "r3"] and body["next"]
    assert [p["repository"] for p in api_read.get(BASE, scope="tenant").json()["results"]] == [None]
    assert len(api_read.get(BASE, scope="repository").json()["results"]) == 12
    assert [p["keep_last"] for p in api_read.get(BASE, repository="r3").json()["results"]] == [3]
    assert len(api_read.get(BASE, enabled="false").json()["results"]) == 6
    assert [e["field"] for e in assert_problem(api_read.get(BASE, scope="galaxy"), 400)["errors"]] == ["scope"]
    with django_assert_max_num_queries(5) as small:
        assert len(api_read.get(BASE, limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(api_read.get(BASE, limit=50).json()["results"]) == 13


# -- dry run ------------------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_lists_exactly_what_the_real_run_deletes_and_why_the_rest_stays(acme, images, api_read):
    retention_policy_set(tenant=acme, keep_last=2, older_than_days=7, keep_regex="release-.*")
    tag_immutable_set(tenant=acme, repository=Repository.objects.get(name="team/app"), name="v1")
    rule = immutable_rule_create(tenant=acme, repository_pattern="team/*", tag_pattern="v2", actor="t")
    before = rows()
    response = api_read.post(DRY_RUN)
    assert response.status_code == 200, response.content
    plan = response.json()
    assert rows() == before  # a dry run changes nothing
    assert plan["complete"] is True and plan["repositories"] == 2
    assert {(d["repository"], d["tag"]) for d in plan["delete"]} == {("team/app", "v3")}
    protected = {(p["repository"], p["tag"]): p["reason"] for p in plan["protected"]}
    assert protected == {
        ("team/app", "latest"): "keep_last",
        ("team/app", "v5"): "keep_last",
        ("team/app", "v4"): "too_new",
        ("team/app", "release-1"): "keep_regex",
        ("team/app", "v1"): "immutable_tag",
        ("team/app", "v2"): "immutable_rule",
        ("lib/db", "a"): "keep_last",
        ("lib/db", "b"): "keep_last",
    }
    v2 = next(p for p in plan["protected"] if p["tag"] == "v2")
    assert f"immutable-tag rule {rule.pk}" in v2["because"][0]
    assert (plan["delete_count"], plan["protected_count"]) == (1, 8)

    deleted_before = _tags("team/app") | _tags("lib/db")
    retention_apply_to_completion(tenant=acme)
    gone = deleted_before - (_tags("team/app") | _tags("lib/db"))
    assert gone == {d["tag"] for d in plan["delete"]}


@pytest.mark.django_db
def test_dry_run_of_an_unsaved_policy_replaces_only_its_scope(acme, images, api_read):
    retention_policy_set(tenant=acme, keep_last=0)  # saved: delete everything, everywhere
    before = rows()
    draft = {"repository": "team/app", "delete_regex": r"v\d", "older_than_days": 8}
    plan = api_read.post(DRY_RUN, {"policy": draft}).json()
    assert rows() == before and not RetentionPolicy.objects.filter(repository__isnull=False).exists()
    assert {(d["repository"], d["tag"]) for d in plan["delete"]} == {
        ("team/app", "v1"),
        ("team/app", "v2"),
        ("lib/db", "a"),
        ("lib/db", "b"),
    }
    reasons = {p["tag"]: p["reason"] for p in plan["protected"]}
    assert reasons == {"v3": "too_new", "v4": "too_new", "v5": "too_new", "release-1": "delete_regex", "latest": "delete_regex"}

    # Saved as drafted, the real run deletes exactly that.
    repository = Repository.objects.get(name="team/app")
    retention_policy_set(tenant=acme, repository=repository, delete_regex=r"v\d", older_than_days=8)
    retention_apply_to_completion(tenant=acme)
    assert _tags("team/app") == {"v3", "v4", "v5", "release-1", "latest"} and _tags("lib/db") == set()


@pytest.mark.django_db
def test_dry_run_without_policies_is_empty_and_a_hidden_repository_is_a_validation_error(acme, images, owner):
    api = Api(token(owner, ["api:read"], repositories=["lib/*"]))
    assert api.post(DRY_RUN).json() == {
        "complete": True,
        "repositories": 0,
        "delete_count": 0,
        "protected_count": 0,
        "delete": [],
        "protected": [],
    }
    problem = assert_problem(api.post(DRY_RUN, {"policy": {"repository": "team/app", "keep_last": 0}}), 400)
    assert [e["field"] for e in problem["errors"]] == ["policy.repository"]


# -- 404 across tenants and the access matrix ---------------------------------


@pytest.mark.django_db
def test_another_tenants_policy_is_404(acme, other_tenant, api_write):
    theirs = retention_policy_set(tenant=other_tenant, keep_last=1)
    before = rows()
    path = f"{BASE}/{theirs.pk}"
    assert_problem(api_write.get(path), 404)
    assert_problem(api_write.patch(path, {"keep_last": 2}, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.delete(path, HTTP_IF_MATCH="*"), 404)
    assert api_write.get(BASE).json()["results"] == []
    assert rows() == before


def _writes(api: Api, policy: RetentionPolicy) -> list:
    path = f"{BASE}/{policy.pk}"
    return [
        api.post(BASE, {"repository": "lib/db", "keep_last": 1}),
        api.patch(path, {"keep_last": 9}, HTTP_IF_MATCH="*"),
        api.delete(path, HTTP_IF_MATCH="*"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "outsider", "staff"])
def test_denied_callers_change_nothing(request, acme, images, policy, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    status = {"anonymous": 401, "revoked": 401, "expired": 401, "registry_only": 403, "outsider": 404, "staff": 404}[who]
    before = rows()
    assert_problem(api.get(BASE), status)
    assert_problem(api.get(f"{BASE}/{policy.pk}"), status)
    assert_problem(api.post(DRY_RUN), status)
    for response in _writes(api, policy):
        assert_problem(response, status)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_read_and_dry_run_but_cannot_write(acme, images, policy, role):
    api = _member(acme, role, scopes=["api:read"])
    assert api.get(BASE).status_code == 200 and api.get(f"{BASE}/{policy.pk}").status_code == 200
    assert api.post(DRY_RUN).status_code == 200
    writer = Api(token(Membership.objects.get(tenant=acme, role=role).user, ["api:write"]))
    writer.get(BASE)  # the first use of a token records it
    before = rows()
    for who in (api, writer):  # no scope to write; a role that may not write
        for response in _writes(who, policy):
            assert_problem(response, 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_write(acme, images, policy, role):
    api = _member(acme, role, scopes=["api:write"])
    created, changed, deleted = _writes(api, policy)
    assert (created.status_code, changed.status_code, deleted.status_code) == (201, 200, 204)
    assert AuditEvent.objects.filter(action="retention_policy.update", actor=f"m-{role}").exists()
    assert not ImmutableTagRule.objects.exists()


@pytest.mark.django_db
def test_robots_neither_read_nor_write_policies(acme, images, policy):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read", "api:write"]).secret)
    robot.get("/api/v1/tenants/acme")  # the first use of a secret records it
    before = rows()
    for response in [robot.get(BASE), robot.get(f"{BASE}/{policy.pk}"), robot.post(DRY_RUN), *_writes(robot, policy)]:
        assert_problem(response, 403)
    assert rows() == before
