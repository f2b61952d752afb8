"""Deleting a tag, a manifest or a repository from the dashboard: bytes freed, refusals, the typed confirmation."""

from __future__ import annotations

import pytest

from accounts.models import Tenant
from gateway.registry.models import JobRun, Manifest, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import tag_immutable_set
from tests.dashboard.test_repositories import image, reg, repo, snapshot

pytestmark = pytest.mark.django_db
__all__ = ["image", "reg"]  # fixtures, shared with test_repositories


# -- deleting -------------------------------------------------------------------------------------


def test_tag_delete_confirmation_shows_bytes_freed_then_deletes_only_the_tag(as_caller, reg, image):
    client = as_caller("admin")
    page = client.get("/orgs/acme/repositories/team/app/-/tags/v1/delete/").content.decode()
    assert f'title="{image["bytes"]} bytes"' in page  # the only tag of a manifest nothing else references
    assert (
        reg.push_manifest("team/app", "v1-alias", image["payload"], "application/vnd.oci.image.manifest.v1+json").status_code
        == 201
    )
    page = client.get("/orgs/acme/repositories/team/app/-/tags/v1/delete/").content.decode()
    assert 'title="0 bytes"' in page and "1 other tag" in page
    response = client.post("/orgs/acme/repositories/team/app/-/tags/v1/delete/")
    assert response["Location"] == "/orgs/acme/repositories/team/app/"
    assert list(Tag.objects.filter(repository=repo()).values_list("name", flat=True)) == ["v1-alias"]
    assert Manifest.objects.filter(digest=image["digest"]).exists()


def test_manifest_delete_frees_only_what_nothing_else_references(as_caller, reg, image):
    reg.push_image("team/other", "v1", [image["layer"]])  # another manifest keeps the app's layer
    client = as_caller("owner")
    url = f"/orgs/acme/repositories/team/app/-/manifests/{image['digest']}/delete/"
    page = client.get(url).content.decode()
    assert f'title="{len(image["payload"])} bytes"' in page  # config and layer are shared with team/other
    assert client.post(url)["Location"] == "/orgs/acme/repositories/team/app/"
    assert not Manifest.objects.filter(repository=repo(), digest=image["digest"]).exists()
    assert not Tag.objects.filter(repository=repo()).exists()


def test_immutable_tag_delete_is_refused_with_a_clear_message(as_caller, image):
    tenant = Tenant.objects.get(slug="acme")
    immutable_rule_create(tenant=tenant, repository_pattern="", tag_pattern="v*", actor="owner")
    client = as_caller("owner")
    before = snapshot()
    page = client.get("/orgs/acme/repositories/team/app/-/tags/v1/delete/")
    assert b"cannot be deleted" in page.content and b'<button type="submit" class="danger">' not in page.content
    refused = client.post("/orgs/acme/repositories/team/app/-/tags/v1/delete/")
    assert refused.status_code == 409 and "immutable by immutable-tag rule" in refused.content.decode()
    manifest = client.post(f"/orgs/acme/repositories/team/app/-/manifests/{image['digest']}/delete/")
    assert manifest.status_code == 409 and "which is immutable by" in manifest.content.decode()
    assert snapshot() == before


def test_repository_delete_needs_the_typed_name_then_starts_the_job(as_caller, image):
    client = as_caller("admin")
    before = snapshot()
    wrong = client.post("/orgs/acme/repositories/team/app/-/delete/", {"confirm": "team/ap"})
    assert wrong.status_code == 400 and "Type team/app exactly" in wrong.content.decode()
    assert snapshot() == before
    response = client.post("/orgs/acme/repositories/team/app/-/delete/", {"confirm": "team/app"}, follow=True)
    assert response.redirect_chain == [("/orgs/acme/repositories/", 302)]
    job = JobRun.objects.get(kind="repository_delete", target="team/app")
    assert f"job {job.pk}" in response.content.decode() and "team/app</a>" not in response.content.decode()
    assert client.get("/orgs/acme/repositories/team/app/").status_code == 404


def test_repository_delete_refused_while_an_immutable_tag_pins_it(as_caller, image):
    tag_immutable_set(tenant=Tenant.objects.get(slug="acme"), repository=repo(), name="v1")
    before = snapshot()
    response = as_caller("owner").post("/orgs/acme/repositories/team/app/-/delete/", {"confirm": "team/app"})
    assert response.status_code == 400 and "is immutable" in response.content.decode()
    assert snapshot() == before
