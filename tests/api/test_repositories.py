"""Repositories and tags: /api/v1/tenants/{slug}/repositories[/{name}[/-/tags[/{tag}]]] — results, errors, access matrix."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership
from gateway.registry.models import JobRun, Manifest, Repository, Tag
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.services.retention import tag_immutable_set
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic

BASE = "/api/v1/tenants/acme/repositories"
LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')


def rows() -> dict[str, list]:
    """snapshot() plus the registry rows a denied request must leave alone."""
    return {
        **snapshot(),
        "repositories": list(Repository.objects.order_by("pk").values("pk", "name", "visibility", "description", "deleted_name")),
        "jobs": list(JobRun.objects.order_by("pk").values("pk", "kind", "state")),
        "tags": list(Tag.objects.order_by("pk").values("pk", "name", "manifest_id", "immutable")),
        "manifests": list(Manifest.objects.order_by("pk").values_list("pk", flat=True)),
    }


@pytest.fixture
def images(owner, acme):
    """acme: team/app with tags v1 and v2 (same image), latest (another); app/tags with tag x (a name ending in /tags)."""
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("team/app", "v1", [b"layer-one"])
    reg.push_image("team/app", "v2", [b"layer-one"])
    reg.push_image("team/app", "latest", [b"layer-two"])
    reg.push_image("app/tags", "x", [b"layer-three"])
    return reg


def _member(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"m-{role}"), scopes))


# -- repositories -------------------------------------------------------------


@pytest.mark.django_db
def test_list_filters_and_sorts(acme, images, api_read):
    repository_ensure(tenant=acme, name="empty")
    body = api_read.get(BASE).json()
    assert [r["name"] for r in body["results"]] == ["app/tags", "empty", "team/app"]
    team = body["results"][2]
    assert team["tag_count"] == 3 and team["visibility"] == "private" and team["last_pushed_at"]
    assert body["results"][1]["tag_count"] == 0 and body["results"][1]["last_pushed_at"] is None
    assert [r["name"] for r in api_read.get(BASE, prefix="team/").json()["results"]] == ["team/app"]
    api_write = Api(token(acme.memberships.get(role="owner").user, ["api:write"]))
    assert api_write.patch(f"{BASE}/app/tags", {"visibility": "public"}).status_code == 200
    assert [r["name"] for r in api_read.get(BASE, visibility="public").json()["results"]] == ["app/tags"]
    newest = [r["name"] for r in api_read.get(BASE, sort="-last_pushed_at").json()["results"]]
    assert newest == ["empty", "app/tags", "team/app"]  # empty was created last, and sorts by creation
    assert [r["name"] for r in api_read.get(BASE, sort="-name").json()["results"]] == ["team/app", "empty", "app/tags"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{"visibility": "secret"}, {"sort": "size"}, {"limit": "0"}, {"prefix": "x" * 256}, {"visibility": "x", "sort": "y"}],
)
def test_list_validation(acme, api_read, params):
    body = assert_problem(api_read.get(BASE, **params), 400)
    assert [e["field"] for e in body["errors"]] == list(params)
    assert all(e["code"] in ("invalid_choice", "max_length", "invalid") for e in body["errors"])


@pytest.mark.django_db
def test_tag_list_prefix_filter(acme, images, api_read):
    tags = f"{BASE}/team/app/-/tags"
    assert [t["name"] for t in api_read.get(tags, prefix="v").json()["results"]] == ["v1", "v2"]
    assert [t["name"] for t in api_read.get(tags, prefix="v", limit=1).json()["results"]] == ["v1"]
    assert api_read.get(tags, prefix="nope").json()["results"] == []
    body = assert_problem(api_read.get(tags, prefix="v" * 129), 400)
    assert [e["field"] for e in body["errors"]] == ["prefix"]


@pytest.mark.django_db
def test_filtered_lists_queries_do_not_grow_with_the_page(acme, images, api_read, django_assert_max_num_queries):
    for i in range(30):
        repository_ensure(tenant=acme, name=f"team/r{i}")
    for limit in (2, 50):
        with django_assert_max_num_queries(8):
            assert api_read.get(BASE, prefix="team/", visibility="private", sort="-name", limit=limit).status_code == 200
        with django_assert_max_num_queries(8):
            assert api_read.get(f"{BASE}/team/app/-/tags", prefix="v", limit=limit).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["name", "-last_pushed_at"])
def test_list_cursor_walks_every_repository_once(acme, api_read, sort):
    for i in range(7):
        repository_ensure(tenant=acme, name=f"r{i}")
    names, response = [], api_read.get(BASE, limit=3, sort=sort)
    while True:
        assert response.status_code == 200, response.content
        names += [r["name"] for r in response.json()["results"]]
        match = LINK_NEXT.search(response.get("Link", ""))
        if not match:
            break
        response = api_read.client.get(match.group(1), **api_read.headers)
    assert sorted(names) == [f"r{i}" for i in range(7)] and len(names) == 7


@pytest.mark.django_db
def test_get_counts_tags_bytes_and_pushes(acme, images, api_read):
    body = api_read.get(f"{BASE}/team/app").json()
    assert body["name"] == "team/app" and body["tag_count"] == 3
    manifests = sum(Manifest.objects.filter(repository__name="team/app").values_list("size", flat=True))
    assert body["stored_bytes"] > manifests > 0
    assert body["last_pushed_at"] and body["last_pulled_at"] is None
    assert_problem(api_read.get(f"{BASE}/team/nope"), 404)
    assert_problem(api_read.get(f"{BASE}/Not_A_Name"), 404)
    assert api_read.get(f"{BASE}/app/tags").json()["tag_count"] == 1  # the repository app/tags, not app's tag list


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(acme, images, api_read, django_assert_max_num_queries):
    for i in range(30):
        repository_ensure(tenant=acme, name=f"r{i}")
    with django_assert_max_num_queries(8):
        assert len(api_read.get(BASE, limit=50).json()["results"]) == 32
    with django_assert_max_num_queries(8):
        assert len(api_read.get(f"{BASE}/team/app/-/tags").json()["results"]) == 3


@pytest.mark.django_db
def test_update_visibility_is_audited_and_idempotent(acme, images, api_write):
    response = api_write.patch(f"{BASE}/team/app", {"visibility": "public"})
    assert response.status_code == 200, response.content
    assert response.json()["visibility"] == "public" and response.json()["tag_count"] == 3
    assert Repository.objects.get(name="team/app").visibility == "public"
    event = AuditEvent.objects.filter(action="repository.visibility").latest("pk")
    assert event.actor == "olivia" and event.target == "team/app" and event.detail == {"visibility": "public"}
    assert api_write.patch(f"{BASE}/team/app", {"visibility": "public"}).status_code == 200
    assert AuditEvent.objects.filter(action="repository.visibility").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, [""]),
        ({"visibility": "secret"}, ["visibility"]),
        ({"description": "x" * 1001}, ["description"]),
        ({"description": None}, ["description"]),
        ({"visibility": "public", "description": 5 * ["x"]}, ["description"]),
    ],
)
def test_update_validation_changes_nothing(acme, images, api_write, body, fields):
    before = rows()
    problem = assert_problem(api_write.patch(f"{BASE}/team/app", body), 400)
    assert [e["field"] for e in problem["errors"]] == fields
    assert rows() == before


@pytest.mark.django_db
def test_description_is_set_shown_and_audited(acme, images, api_write):
    text = "The team's app.\nBuilt nightly; " + "x" * 960
    response = api_write.patch(f"{BASE}/team/app", {"description": text})
    assert response.status_code == 200, response.content
    assert response.json()["description"] == text and response.json()["visibility"] == "private"
    assert api_write.get(f"{BASE}/team/app").json()["description"] == text
    listed = {r["name"]: r["description"] for r in api_write.get(BASE).json()["results"]}
    assert listed == {"app/tags": "", "team/app": text}
    event = AuditEvent.objects.get(action="repository.description")
    assert event.actor == "olivia" and event.target == "team/app"
    assert api_write.patch(f"{BASE}/team/app", {"description": text}).status_code == 200  # unchanged: no second entry
    both = api_write.patch(f"{BASE}/team/app", {"description": "", "visibility": "public"}).json()
    assert both["description"] == "" and both["visibility"] == "public"
    assert AuditEvent.objects.filter(action="repository.description").count() == 2


# -- tags ---------------------------------------------------------------------


@pytest.mark.django_db
def test_tags_list_by_name_with_manifest_fields(acme, images, api_read):
    body = api_read.get(f"{BASE}/team/app/-/tags").json()
    assert [t["name"] for t in body["results"]] == ["latest", "v1", "v2"]
    v1, v2 = body["results"][1:]
    assert v1["digest"] == v2["digest"] and v1["digest"].startswith("sha256:")
    assert v1["media_type"] == "application/vnd.oci.image.manifest.v1+json" and v1["size"] > 0
    assert v1["pushed_at"] and v1["immutable"] is False
    page = api_read.get(f"{BASE}/team/app/-/tags", limit=2).json()
    assert [t["name"] for t in page["results"]] == ["latest", "v1"]
    rest = api_read.client.get(page["next"], **api_read.headers).json()
    assert [t["name"] for t in rest["results"]] == ["v2"] and rest["next"] is None
    assert [t["name"] for t in api_read.get(f"{BASE}/app/tags/-/tags").json()["results"]] == ["x"]
    assert_problem(api_read.get(f"{BASE}/nope/-/tags"), 404)


@pytest.mark.django_db
def test_tag_get(acme, images, api_read):
    tag_immutable_set(tenant=acme, repository=Repository.objects.get(name="team/app"), name="v1")
    body = api_read.get(f"{BASE}/team/app/-/tags/v1").json()
    manifest = Tag.objects.get(repository__name="team/app", name="v1").manifest
    assert body == {
        "name": "v1",
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "size": manifest.size,
        "pushed_at": body["pushed_at"],
        "last_pulled_at": None,
        "immutable": True,
    }
    assert_problem(api_read.get(f"{BASE}/team/app/-/tags/v9"), 404)


@pytest.mark.django_db
def test_tag_delete_goes_through_the_registry_delete(acme, images, api_write, owner):
    response = api_write.delete(f"{BASE}/team/app/-/tags/v1")
    assert response.status_code == 204, response.content
    assert not Tag.objects.filter(repository__name="team/app", name="v1").exists()
    assert Tag.objects.filter(repository__name="team/app", name="v2").exists()  # the manifest stays
    event = AuditEvent.objects.filter(action="tag.delete").latest("pk")
    assert event.actor == "olivia" and event.target == "team/app:v1"
    pull = Reg(Client(), basic(owner.username, make_token(owner)))
    assert pull.get("/v2/acme/team/app/manifests/v1").status_code == 404
    assert pull.get("/v2/acme/team/app/manifests/v2").status_code == 200
    assert_problem(api_write.delete(f"{BASE}/team/app/-/tags/v1"), 404)


@pytest.mark.django_db
def test_immutable_tag_delete_is_a_conflict_and_changes_nothing(acme, images, api_write):
    tag_immutable_set(tenant=acme, repository=Repository.objects.get(name="team/app"), name="v1")
    before = rows()
    body = assert_problem(api_write.delete(f"{BASE}/team/app/-/tags/v1"), 409)
    assert "immutable" in body["detail"]
    assert rows() == before


# -- access matrix ------------------------------------------------------------

READS = [f"{BASE}", f"{BASE}/team/app", f"{BASE}/team/app/-/tags", f"{BASE}/team/app/-/tags/v1"]
WRITES = [
    ("patch", f"{BASE}/team/app"),
    ("patch-description", f"{BASE}/team/app"),
    ("delete", f"{BASE}/team/app/-/tags/v1"),
    ("delete", f"{BASE}/team/app"),
]


def _write(api: Api, method: str, path: str):
    if method == "patch":
        return api.patch(path, {"visibility": "public"})
    if method == "patch-description":
        return api.patch(path, {"description": "mine now"})
    return api.delete(path)


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "outsider", "staff"])
def test_denied_callers_change_nothing(request, acme, images, sent, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    status = {"anonymous": 401, "revoked": 401, "expired": 401, "registry_only": 403, "outsider": 404, "staff": 404}[who]
    before = rows()
    for path in READS:
        assert_problem(api.get(path), status)
    for method, path in WRITES:
        assert_problem(_write(api, method, path), status)
    assert rows() == before and sent == []


@pytest.mark.django_db
def test_api_read_token_reads_but_cannot_write(acme, images, api_read):
    for path in READS:
        assert api_read.get(path).status_code == 200, path
    before = rows()
    for method, path in WRITES:
        assert_problem(_write(api_read, method, path), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_read_but_cannot_change_visibility_or_delete_tags(acme, images, role):
    api = _member(acme, role)
    for path in READS:
        assert api.get(path).status_code == 200, path
    before = rows()
    for method, path in WRITES:
        assert_problem(_write(api, method, path), 403)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_change_visibility_and_delete_tags(acme, images, role):
    api = _member(acme, role, scopes=["api:write"])
    assert _write(api, "patch", f"{BASE}/team/app").status_code == 200
    assert _write(api, "patch-description", f"{BASE}/team/app").status_code == 200
    assert _write(api, "delete", f"{BASE}/team/app/-/tags/v1").status_code == 204
    assert AuditEvent.objects.filter(action="tag.delete", actor=f"m-{role}").exists()
    assert _write(api, "delete", f"{BASE}/team/app").status_code == 202
    assert AuditEvent.objects.filter(action="repository.delete", actor=f"m-{role}").exists()


@pytest.mark.django_db
def test_token_repository_patterns_hide_other_repositories(acme, images, owner):
    api = Api(token(owner, ["api:read", "api:write"], repositories=["team/*"]))
    assert [r["name"] for r in api.get(BASE).json()["results"]] == ["team/app"]
    assert api.get(f"{BASE}/team/app").status_code == 200
    before = rows()
    assert_problem(api.get(f"{BASE}/app/tags"), 404)
    assert_problem(api.get(f"{BASE}/app/tags/-/tags"), 404)
    assert_problem(api.patch(f"{BASE}/app/tags", {"visibility": "public"}), 404)
    assert_problem(api.delete(f"{BASE}/app/tags/-/tags/x"), 404)
    assert_problem(api.delete(f"{BASE}/app/tags"), 404)
    assert rows() == before


@pytest.mark.django_db
def test_robot_reads_its_tenant_only_and_never_writes(acme, other_tenant, images):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read", "api:write"]).secret)
    for path in READS:
        assert robot.get(path).status_code == 200, path
    assert_problem(robot.get("/api/v1/tenants/globex/repositories"), 404)
    before = rows()
    for method, path in WRITES:
        assert_problem(_write(robot, method, path), 403)
    assert rows() == before


# -- deleting a repository ----------------------------------------------------


@pytest.mark.django_db
def test_delete_takes_the_repository_out_at_once_and_queues_its_job(
    acme, images, api_write, owner, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_write.delete(f"{BASE}/team/app")
    assert response.status_code == 202, response.content
    job = JobRun.objects.get(kind="repository_delete")
    assert response["Location"] == f"/api/v1/tenants/acme/jobs/{job.pk}"
    body = response.json()
    assert body["kind"] == "repository_delete" and body["target"] == "team/app" and body["state"] == "queued"
    old = Repository.objects.get(deleted_name="team/app")
    assert old.name == f"_deleted/{old.pk}"
    assert sent == [("gateway.repositories.delete", {"tenant_id": acme.pk, "repository_id": old.pk, "job_id": job.pk}, "gc")]
    event = AuditEvent.objects.get(action="repository.delete")
    assert event.actor == "olivia" and event.target == "team/app" and event.detail == {"job_id": job.pk}
    # Gone from the API and the registry at once.
    assert_problem(api_write.get(f"{BASE}/team/app"), 404)
    assert [r["name"] for r in api_write.get(BASE).json()["results"]] == ["app/tags"]
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    assert reg.get("/v2/acme/team/app/manifests/v1").status_code == 404
    assert reg.get("/v2/acme/team/app/tags/list").status_code == 404
    assert reg.get("/v2/_catalog").json()["repositories"] == ["acme/app/tags"]
    assert_problem(api_write.delete(f"{BASE}/team/app"), 404)
    # The name is free: a push creates a new repository beside the one being emptied.
    reg.push_image("team/app", "v9", [b"layer-one"])
    fresh = api_write.get(f"{BASE}/team/app").json()
    assert fresh["tag_count"] == 1 and fresh["description"] == ""
    assert Repository.objects.filter(tenant=acme, name="team/app", deleted_name="").exists()
    assert Tag.objects.filter(repository=old).count() == 3  # left for the job


@pytest.mark.django_db
def test_delete_of_a_repository_with_an_immutable_tag_is_a_conflict(acme, images, api_write, sent):
    tag_immutable_set(tenant=acme, repository=Repository.objects.get(name="team/app"), name="v1")
    before = rows()
    body = assert_problem(api_write.delete(f"{BASE}/team/app"), 409)
    assert "immutable" in body["detail"] and "'v1'" in body["detail"]
    assert rows() == before and sent == []
