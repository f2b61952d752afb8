"""Getting started, create organisation, the repository list and a repository's page (Django test client, real pushes)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Tenant
from gateway.registry.models import JobRun, Manifest, Repository, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import tag_immutable_set
from gateway.registry.usage_selectors import usage_storage_get
from tests.dashboard.conftest import CALLERS, ROLES, allowed, assert_denied
from tests.factories import make_token
from tests.helpers import Reg, basic, sha

pytestmark = pytest.mark.django_db

ADMINS = allowed(Membership.Role.ADMIN)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux"}'


@pytest.fixture
def reg(users):
    return Reg(Client(), basic("owner", make_token(users["owner"])), prefix="/v2/acme")


@pytest.fixture
def image(reg):
    """acme/team/app:v1, one layer; what the pages must show is computed from what was pushed."""
    layer = b"layer-of-app-v1"
    digest, payload = reg.push_image("team/app", "v1", [layer])
    return {"digest": digest, "payload": payload, "layer": layer, "bytes": len(payload) + len(CONFIG) + len(layer)}


def repo(name: str = "team/app") -> Repository:
    return Repository.objects.get(tenant__slug="acme", name=name)


def snapshot() -> tuple:
    """What a refused POST must leave as it was: repositories, tags, manifests, jobs, audit entries."""
    rows = list(Repository.objects.order_by("pk").values_list("name", "visibility", "description", "deleted_name"))
    tags = list(Tag.objects.order_by("pk").values_list("pk", "manifest_id"))
    return rows, tags, Manifest.objects.count(), JobRun.objects.count(), AuditEvent.objects.count()


# -- access matrix --------------------------------------------------------------------------------

READ_PAGES = [
    "/orgs/acme/start/",
    "/orgs/acme/start/first-push/",
    "/orgs/acme/repositories/",
    "/orgs/acme/repositories/team/app/",
]
ADMIN_PAGES = [
    "/orgs/acme/repositories/team/app/-/tags/v1/delete/",
    "/orgs/acme/repositories/team/app/-/manifests/{digest}/delete/",
    "/orgs/acme/repositories/team/app/-/delete/",
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", READ_PAGES)
def test_read_pages_access(as_caller, caller, url, image):
    response = as_caller(caller).get(url)
    if caller in ROLES:
        assert response.status_code == 200
    else:
        assert_denied(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_confirmation_pages_are_for_admins(as_caller, caller, url, image):
    response = as_caller(caller).get(url.format(digest=image["digest"]))
    if caller in ADMINS:
        assert response.status_code == 200
        assert b'method="post"' in response.content
    else:
        assert_denied(response, caller)


POSTS = [
    ("/orgs/acme/repositories/team/app/-/settings/", {"visibility": "public", "description": "changed"}),
    ("/orgs/acme/repositories/team/app/-/tags/v1/delete/", {}),
    ("/orgs/acme/repositories/team/app/-/manifests/{digest}/delete/", {}),
    ("/orgs/acme/repositories/team/app/-/delete/", {"confirm": "team/app"}),
]


@pytest.mark.parametrize("caller", [c for c in CALLERS if c not in ADMINS])
@pytest.mark.parametrize(("url", "data"), POSTS)
def test_refused_posts_change_nothing(as_caller, caller, url, data, image):
    before = snapshot()
    response = as_caller(caller).post(url.format(digest=image["digest"]), data)
    assert_denied(response, caller)
    assert snapshot() == before


@pytest.mark.parametrize("caller", ADMINS)
@pytest.mark.parametrize(("url", "data"), POSTS)
def test_admins_posts_do_it_and_redirect(as_caller, caller, url, data, image):
    response = as_caller(caller).post(url.format(digest=image["digest"]), data)
    assert response.status_code == 302, response.content[:500]
    assert AuditEvent.objects.filter(actor=f"acme-{caller}" if caller != "owner" else "owner").exists()


def test_unknown_repository_tag_and_manifest_are_404(as_caller, image):
    owner = as_caller("owner")
    assert owner.get("/orgs/acme/repositories/team/nope/").status_code == 404
    assert owner.get("/orgs/acme/repositories/team/app/-/tags/nope/delete/").status_code == 404
    assert owner.get(f"/orgs/acme/repositories/team/app/-/manifests/sha256:{'0' * 64}/delete/").status_code == 404
    assert as_caller("other").get("/orgs/globex/repositories/team/app/").status_code == 404  # globex has no such repository


# -- org overview and getting started -------------------------------------------------------------


def test_overview_sends_an_empty_organisation_to_getting_started_else_summarises(as_caller, reg):
    owner = as_caller("owner")
    assert owner.get("/orgs/acme/")["Location"] == "/orgs/acme/start/"
    digest, payload = reg.push_image("team/app", "v1", [b"one-layer"])
    page = owner.get("/orgs/acme/")
    assert page.status_code == 200
    html = page.content.decode()
    stored = len(payload) + len(CONFIG) + len(b"one-layer")
    assert ">1</strong>" in html and f'title="{stored} bytes"' in html
    assert "/orgs/acme/repositories/" in html


def test_start_shows_the_endpoint_and_docker_lines(as_caller, settings):
    html = as_caller("writer").get("/orgs/acme/start/").content.decode()
    domain = settings.REGISTRY_DOMAIN
    assert f"{domain}/acme/&lt;repository&gt;" in html
    assert f"docker login {domain} -u acme-writer" in html
    assert f"docker tag my-image:latest {domain}/acme/my-image:latest" in html
    assert f"docker push {domain}/acme/my-image:latest" in html
    assert html.count("data-copy=") >= 4
    assert "is an IP address" in html  # the test deployment's domain is 127.0.0.1:<port>: no host form


@override_settings(REGISTRY_DOMAIN="registry.example.com", ALLOWED_HOSTS=["testserver", ".registry.example.com"])
def test_start_shows_the_host_form_where_it_is_served(as_caller):
    html = as_caller("reader").get("/orgs/acme/start/").content.decode()
    assert "acme.registry.example.com/&lt;repository&gt;" in html
    assert "registry.example.com/acme/&lt;repository&gt;" in html


@override_settings(REGISTRY_DOMAIN="registry.example.com", ALLOWED_HOSTS=["testserver", "registry.example.com"])
def test_start_hides_the_host_form_when_allowed_hosts_refuse_it(as_caller):
    html = as_caller("reader").get("/orgs/acme/start/").content.decode()
    assert "acme.registry.example.com/&lt;repository&gt;" not in html and "ALLOWED_HOSTS" in html


def test_first_push_fragment_polls_until_a_tag_exists_then_stops(as_caller, reg):
    client = as_caller("reader")
    waiting = client.get("/orgs/acme/start/first-push/").content.decode()
    assert 'hx-trigger="every 3s"' in waiting and "Waiting for your first push" in waiting
    reg.push_image("team/app", "v7", [b"x"])
    done = client.get("/orgs/acme/start/first-push/").content.decode()
    assert "hx-trigger" not in done
    assert 'href="/orgs/acme/repositories/team/app/"' in done and "<code>v7</code>" in done


# -- create organisation --------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_create_organisation_is_for_every_signed_in_user(as_caller, caller):
    for url in ("/orgs/new/", "/orgs/new/check-slug?slug=fresh"):
        response = as_caller(caller).get(url)
        if caller == "anonymous":
            assert_denied(response, caller)
        else:
            assert response.status_code == 200


def test_anonymous_create_changes_nothing(as_caller):
    before = Tenant.objects.count()
    assert_denied(as_caller("anonymous").post("/orgs/new/", {"slug": "fresh"}), "anonymous")
    assert Tenant.objects.count() == before


def test_create_organisation_makes_me_owner_and_opens_getting_started(as_caller, users):
    response = as_caller("staff").post("/orgs/new/", {"slug": "initech", "name": "Initech"})
    assert response["Location"] == "/orgs/initech/start/"
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.name == "Initech"
    assert Membership.objects.get(tenant=tenant, user=users["staff"]).role == "owner"
    assert AuditEvent.objects.filter(action="tenant.create", tenant=tenant, actor="operator").exists()


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("Bad_Slug", "must be a DNS label"),
        ("a", "2 to 63 characters"),
        ("admin", "is reserved"),
        ("new", "is reserved"),
        ("acme", "is taken"),
        ("ab--cd", "reserved for IDNs"),
    ],
)
def test_bad_or_taken_slug_is_refused_with_the_reason(as_caller, slug, reason):
    client = as_caller("owner")
    before = (Tenant.objects.count(), AuditEvent.objects.count())
    response = client.post("/orgs/new/", {"slug": slug})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert (Tenant.objects.count(), AuditEvent.objects.count()) == before
    check = client.get("/orgs/new/check-slug", {"slug": slug}).content.decode()
    assert reason in check and ("Taken" if reason == "is taken" else "Invalid") in check


def test_check_slug_says_available(as_caller):
    check = as_caller("reader").get("/orgs/new/check-slug", {"slug": "brand-new"}).content.decode()
    assert "Available" in check and "brand-new" in check
    assert as_caller("reader").get("/orgs/new/check-slug").content.decode().strip() == ""


def test_switcher_and_orgs_page_link_to_create(as_caller):
    html = as_caller("reader").get("/orgs/").content.decode()
    assert html.count('href="/orgs/new/"') == 2  # the switcher and the page's button


# -- the repository list --------------------------------------------------------------------------


def seed_repositories(count: int, *, start: int = 0) -> None:
    """`count` repositories in acme, each with one manifest and one tag (rows only: the list reads no objects)."""
    tenant = Tenant.objects.get(slug="acme")
    now = timezone.now()
    names = [f"bulk/r{i:04d}" for i in range(start, start + count)]
    repositories = Repository.objects.bulk_create([Repository(tenant=tenant, name=n) for n in names])
    payloads = [json.dumps({"schemaVersion": 2, "name": n}).encode() for n in names]
    manifests = Manifest.objects.bulk_create(
        [
            Manifest(tenant=tenant, repository=r, digest=sha(p), media_type="application/json", size=len(p), payload=p)
            for r, p in zip(repositories, payloads, strict=True)
        ]
    )
    Tag.objects.bulk_create(
        [
            Tag(tenant=tenant, repository=r, name="v1", manifest=m, last_pushed_at=now)
            for r, m in zip(repositories, manifests, strict=True)
        ]
    )


def queries(client: Client, url: str, **extra) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, **extra).status_code == 200
    return len(captured)


def test_repository_list_queries_do_not_grow_with_rows(as_caller, django_assert_max_num_queries):
    client = as_caller("reader")
    seed_repositories(5)
    few = queries(client, "/orgs/acme/repositories/?sort=-size")
    seed_repositories(995, start=5)  # 1,000 repositories
    for url in ("/orgs/acme/repositories/?sort=-size", "/orgs/acme/repositories/?page=40&sort=pushed&q=bulk"):
        with django_assert_max_num_queries(few):
            assert client.get(url).status_code == 200
    page2 = client.get("/orgs/acme/repositories/?page=2").content.decode()
    assert "bulk/r0025" in page2 and "bulk/r0024" not in page2 and "Page 2 of 40" in page2


def test_repository_list_shows_sizes_as_usage_counts_them(as_caller, reg, image, users):
    reg.push_image("team/web", "v1", [image["layer"], b"web-only-layer"])  # shares the app's layer
    html = as_caller("reader").get("/orgs/acme/repositories/").content.decode()
    usage = {r["name"]: r for r in usage_storage_get(tenant=Tenant.objects.get(slug="acme"))["repositories"]}
    for name in ("team/app", "team/web"):
        assert f'title="{usage[name]["stored_bytes"]} bytes: manifests' in html
        assert f'title="{usage[name]["unique_bytes"]} bytes: blobs no other' in html
    assert usage["team/web"]["unique_bytes"] == len(b"web-only-layer")
    assert '<span class="badge">private</span>' in html


def test_repository_list_search_sort_and_htmx_partial(as_caller, reg, image):
    reg.push_image("tools/cli", "v1", [b"cli"])
    client = as_caller("reader")
    contains = client.get("/orgs/acme/repositories/", {"q": "app"}).content.decode()
    assert "team/app" in contains and "tools/cli" not in contains
    prefix = client.get("/orgs/acme/repositories/", {"q": "app", "match": "prefix"}).content.decode()
    assert "No repository matches" in prefix
    by_name_desc = client.get("/orgs/acme/repositories/", {"sort": "-name"}).content.decode()
    assert by_name_desc.index("tools/cli") < by_name_desc.index("team/app")
    partial = client.get("/orgs/acme/repositories/", {"q": "cli"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.startswith('<div id="repo-results"') and "<html" not in partial and "tools/cli" in partial
    bad_sort = client.get("/orgs/acme/repositories/", {"sort": "bogus", "q": "cli"})  # bad sort: by name, the search applies
    assert (
        bad_sort.status_code == 200 and "tools/cli" in bad_sort.content.decode() and "team/app" not in bad_sort.content.decode()
    )
    too_long = client.get("/orgs/acme/repositories/", {"q": "x" * 300})  # longer than any name: ignored, everything listed
    assert too_long.status_code == 200 and "team/app" in too_long.content.decode()


# -- a repository's page --------------------------------------------------------------------------


def index_doc(children: list[tuple[str, bytes, str]]) -> bytes:
    manifests = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d,
            "size": len(p),
            "platform": {"os": "linux", "architecture": a},
        }
        for d, p, a in children
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


def test_repository_page_shows_tags_platforms_sizes_and_pull_lines(as_caller, reg, image, settings):
    arm_digest, arm_payload = reg.push_image("team/app", "arm", [b"arm-layer"], config=b'{"architecture":"arm64","os":"linux"}')
    index = index_doc([(image["digest"], image["payload"], "amd64"), (arm_digest, arm_payload, "arm64")])
    assert reg.push_manifest("team/app", "multi", index, OCI_INDEX).status_code == 201
    html = as_caller("reader").get("/orgs/acme/repositories/team/app/").content.decode()
    prefix = f"{settings.REGISTRY_DOMAIN}/acme/team/app"
    assert f"docker pull {prefix}:arm" in html and f"docker pull {prefix}@{arm_digest}" in html
    assert f'href="/orgs/acme/repositories/team/app/manifests/{image["digest"]}/"' in html
    assert '<span class="badge">linux/amd64</span> <span class="badge">linux/arm64</span>' in html  # the index
    assert f'title="{image["bytes"]} bytes (manifest' in html  # v1: manifest + config + layer
    arm_bytes = len(arm_payload) + len(b'{"architecture":"arm64","os":"linux"}') + len(b"arm-layer")
    assert f'title="{len(index) + image["bytes"] + arm_bytes} bytes (manifest' in html
    assert "Delete tag" not in html and "Save settings" not in html  # a reader manages nothing


def test_immutable_marker_from_rule_or_flag(as_caller, reg, image):
    tenant = Tenant.objects.get(slug="acme")
    reg.push_image("team/app", "release-1", [b"r1"])
    immutable_rule_create(tenant=tenant, repository_pattern="team/*", tag_pattern="release-*", actor="owner")
    html = as_caller("reader").get("/orgs/acme/repositories/team/app/").content.decode()
    assert html.count(">immutable</span>") == 1 and "immutable by immutable-tag rule" in html
    tag_immutable_set(tenant=tenant, repository=repo(), name="v1")
    assert as_caller("reader").get("/orgs/acme/repositories/team/app/").content.decode().count(">immutable</span>") == 2


def test_repository_page_queries_do_not_grow_with_tags(as_caller, reg, image, django_assert_max_num_queries):
    other, _ = reg.push_image("team/app", "other", [b"other-layer"], config=b'{"architecture":"s390x","os":"linux"}')
    repository, now = repo(), timezone.now()
    manifests = [Manifest.objects.get(repository=repository, digest=d) for d in (image["digest"], other)]

    def tags(start: int, count: int) -> None:
        for i in range(start, start + count):
            Tag.objects.create(
                tenant=repository.tenant, repository=repository, name=f"t{i:03d}", manifest=manifests[i % 2], last_pushed_at=now
            )

    client = as_caller("admin")
    tags(0, 3)  # 5 tags with v1 and other
    few = queries(client, "/orgs/acme/repositories/team/app/")
    tags(3, 45)
    with django_assert_max_num_queries(few):
        html = client.get("/orgs/acme/repositories/team/app/").content.decode()
    assert html.count('<span class="badge">linux/s390x</span>') == 25 and "Page 1 of 1" not in html


def test_settings_change_visibility_and_description(as_caller, image):
    response = as_caller("admin").post(
        "/orgs/acme/repositories/team/app/-/settings/", {"visibility": "public", "description": "The app"}
    )
    assert response["Location"] == "/orgs/acme/repositories/team/app/"
    assert (repo().visibility, repo().description) == ("public", "The app")
    assert AuditEvent.objects.filter(action="repository.visibility", actor="acme-admin").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [({"visibility": "secret"}, "Select a valid choice"), ({"visibility": "public", "description": "x" * 1001}, "at most 1000")],
)
def test_settings_validation(as_caller, image, data, message):
    before = snapshot()
    response = as_caller("owner").post("/orgs/acme/repositories/team/app/-/settings/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert snapshot() == before
