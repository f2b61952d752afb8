"""Immutable-tag rules: /api/v1/tenants/{slug}/immutable-tag-rules[/{id}] — CRUD, ETag/If-Match, filters, enforcement, access matrix."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership
from gateway.registry.models import ImmutableTagRule, RetentionPolicy, Tag
from gateway.registry.services.immutability import immutable_rule_create
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic

BASE = "/api/v1/tenants/acme/immutable-tag-rules"


def rows() -> dict[str, list]:
    """snapshot() plus the policy rows a denied request must leave alone."""
    return {
        **snapshot(),
        "rules": list(ImmutableTagRule.objects.order_by("pk").values()),
        "policies": list(RetentionPolicy.objects.order_by("pk").values()),
        "tags": list(Tag.objects.order_by("pk").values("pk", "name", "manifest_id")),
    }


@pytest.fixture
def rule(acme) -> ImmutableTagRule:
    return immutable_rule_create(tenant=acme, repository_pattern="team/*", tag_pattern="v*", actor="setup")


def _member(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"m-{role}"), scopes))


def _if_match(api: Api, path: str) -> dict:
    return {"HTTP_IF_MATCH": api.get(path)["ETag"]}


# -- results ------------------------------------------------------------------


@pytest.mark.django_db
def test_create_get_update_delete_with_etags_and_audit(acme, api_write):
    created = api_write.post(BASE, {"repository_pattern": "team/*", "tag_pattern": "release-*"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["repository_pattern"] == "team/*" and body["tag_pattern"] == "release-*" and created["ETag"]
    path = f"{BASE}/{body['id']}"
    got = api_write.get(path)
    assert got.json() == body and got["ETag"] == created["ETag"]
    assert AuditEvent.objects.filter(action="immutable_rule.create", actor="olivia", target=str(body["id"])).exists()

    changed = api_write.patch(path, {"tag_pattern": "v*"}, HTTP_IF_MATCH=got["ETag"])
    assert changed.status_code == 200, changed.content
    assert changed.json()["tag_pattern"] == "v*" and changed.json()["repository_pattern"] == "team/*"
    assert changed["ETag"] != got["ETag"] and changed["ETag"] == api_write.get(path)["ETag"]
    assert AuditEvent.objects.filter(action="immutable_rule.update").latest("pk").detail["tag_pattern"] == "v*"

    assert api_write.delete(path, HTTP_IF_MATCH=changed["ETag"]).status_code == 204
    assert not ImmutableTagRule.objects.exists() and AuditEvent.objects.filter(action="immutable_rule.delete").exists()
    assert_problem(api_write.get(path), 404)


@pytest.mark.django_db
def test_if_match_is_required_and_must_be_current(acme, rule, api_write):
    path = f"{BASE}/{rule.pk}"
    stale = api_write.get(path)["ETag"]
    ImmutableTagRule.objects.filter(pk=rule.pk).update(tag_pattern="w*")
    before = rows()
    assert_problem(api_write.patch(path, {"tag_pattern": "x*"}), 428)
    assert_problem(api_write.patch(path, {"tag_pattern": "x*"}, HTTP_IF_MATCH=stale), 412)
    assert_problem(api_write.delete(path), 428)
    assert_problem(api_write.delete(path, HTTP_IF_MATCH=stale), 412)
    assert_problem(api_write.delete(path, HTTP_IF_MATCH=f"W/{api_write.get(path)['ETag']}"), 412)
    assert rows() == before
    assert api_write.delete(path, HTTP_IF_MATCH="*").status_code == 204


@pytest.mark.django_db
def test_list_filters_and_pages(acme, api_read):
    for i in range(5):
        immutable_rule_create(tenant=acme, repository_pattern="team/*" if i % 2 else "", tag_pattern=f"v{i}*", actor="t")
    page = api_read.get(BASE, limit=2).json()
    assert [r["tag_pattern"] for r in page["results"]] == ["v0*", "v1*"] and page["next"]
    rest = api_read.client.get(page["next"], **api_read.headers).json()
    assert [r["tag_pattern"] for r in rest["results"]] == ["v2*", "v3*"]
    team = api_read.get(BASE, repository_pattern="team/*").json()["results"]
    assert [r["tag_pattern"] for r in team] == ["v1*", "v3*"]
    assert [r["tag_pattern"] for r in api_read.get(BASE, tag_pattern="v4*").json()["results"]] == ["v4*"]


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(acme, api_read, django_assert_max_num_queries):
    for i in range(60):
        immutable_rule_create(tenant=acme, repository_pattern="", tag_pattern=f"t{i}", actor="t")
    api_read.get(BASE, limit=1)  # the first use of a token records it
    with django_assert_max_num_queries(5) as small:
        assert len(api_read.get(BASE, limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(api_read.get(BASE, limit=60).json()["results"]) == 60


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["tag_pattern"]),
        ({"tag_pattern": ""}, ["tag_pattern"]),
        ({"tag_pattern": "a" * 129}, ["tag_pattern"]),
        ({"tag_pattern": "v\t1"}, ["tag_pattern"]),
        ({"tag_pattern": "v*", "repository_pattern": "r" * 256}, ["repository_pattern"]),
    ],
)
def test_create_validation_changes_nothing(acme, api_write, body, fields):
    before = rows()
    problem = assert_problem(api_write.post(BASE, body), 400)
    assert [e["field"] for e in problem["errors"]] == fields
    assert rows() == before


@pytest.mark.django_db
def test_duplicates_are_a_conflict_and_bad_updates_change_nothing(acme, rule, api_write):
    before = rows()
    assert (
        "exists already"
        in assert_problem(api_write.post(BASE, {"repository_pattern": "team/*", "tag_pattern": "v*"}), 409)["detail"]
    )
    other = immutable_rule_create(tenant=acme, repository_pattern="", tag_pattern="x", actor="t")
    before = rows()
    path = f"{BASE}/{other.pk}"
    assert_problem(
        api_write.patch(path, {"repository_pattern": "team/*", "tag_pattern": "v*"}, **_if_match(api_write, path)), 409
    )
    problem = assert_problem(api_write.patch(path, {"tag_pattern": ""}, **_if_match(api_write, path)), 400)
    assert [e["field"] for e in problem["errors"]] == ["tag_pattern"]
    assert rows() == before


@pytest.mark.django_db
def test_a_rule_made_through_the_api_protects_tags_on_push(acme, owner, api_write):
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("team/app", "v1", [b"one"])
    rule_id = api_write.post(BASE, {"repository_pattern": "team/*", "tag_pattern": "v*"}).json()["id"]
    config = b'{"os":"linux","architecture":"amd64","n":2}'
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": reg.push_blob("team/app", config),
            "size": len(config),
        },
        "layers": [],
    }
    denied = reg.push_manifest("team/app", "v1", doc)
    assert denied.status_code == 403 and f"immutable-tag rule {rule_id}" in denied.json()["errors"][0]["message"]


# -- 404 across tenants and the access matrix ---------------------------------


@pytest.mark.django_db
def test_another_tenants_rule_is_404(acme, other_tenant, api_write):
    theirs = immutable_rule_create(tenant=other_tenant, repository_pattern="", tag_pattern="v*", actor="t")
    before = rows()
    path = f"{BASE}/{theirs.pk}"
    assert_problem(api_write.get(path), 404)
    assert_problem(api_write.patch(path, {"tag_pattern": "x"}, HTTP_IF_MATCH="*"), 404)
    assert_problem(api_write.delete(path, HTTP_IF_MATCH="*"), 404)
    assert api_write.get(BASE).json()["results"] == []
    assert rows() == before


def _writes(api: Api, rule: ImmutableTagRule) -> list:
    path = f"{BASE}/{rule.pk}"
    return [
        api.post(BASE, {"tag_pattern": "new-*"}),
        api.patch(path, {"tag_pattern": "x*"}, HTTP_IF_MATCH="*"),
        api.delete(path, HTTP_IF_MATCH="*"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "outsider", "staff"])
def test_denied_callers_change_nothing(request, acme, rule, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    status = {"anonymous": 401, "revoked": 401, "expired": 401, "registry_only": 403, "outsider": 404, "staff": 404}[who]
    before = rows()
    assert_problem(api.get(BASE), status)
    assert_problem(api.get(f"{BASE}/{rule.pk}"), status)
    for response in _writes(api, rule):
        assert_problem(response, status)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_read_but_cannot_write(acme, rule, role):
    api = _member(acme, role)
    assert api.get(BASE).status_code == 200 and api.get(f"{BASE}/{rule.pk}").status_code == 200
    before = rows()
    for response in _writes(api, rule):
        assert_problem(response, 403)
    assert rows() == before


@pytest.mark.django_db
def test_api_read_tokens_and_robots_cannot_write(acme, rule, api_read):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read", "api:write"]).secret)
    assert api_read.get(BASE).status_code == 200
    assert_problem(robot.get(BASE), 403)
    before = rows()
    for api in (api_read, robot):
        for response in _writes(api, rule):
            assert_problem(response, 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_write(acme, rule, role):
    api = _member(acme, role, scopes=["api:write"])
    created, changed, deleted = _writes(api, rule)
    assert (created.status_code, changed.status_code, deleted.status_code) == (201, 200, 204)
    assert AuditEvent.objects.filter(action="immutable_rule.create", actor=f"m-{role}").exists()
