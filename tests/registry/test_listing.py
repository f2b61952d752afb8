"""Tag lists, the catalog, pagination and host-based tenants."""

import pytest
from django.test import Client

from tests.factories import make_tenant
from tests.helpers import Reg

pytestmark = pytest.mark.django_db


def test_tags_list_paginates_in_lexical_order(reg):
    for tag in ["b", "a", "c", "B", "1.0"]:
        reg.push_image("app", tag, [b"same layer"])
    r = reg.get("/v2/acme/app/tags/list")
    assert r.json() == {"name": "acme/app", "tags": ["1.0", "B", "a", "b", "c"]}
    r = reg.get("/v2/acme/app/tags/list?n=2")
    assert r.json()["tags"] == ["1.0", "B"]
    assert r["Link"] == '</v2/acme/app/tags/list?n=2&last=B>; rel="next"'
    r = reg.get("/v2/acme/app/tags/list?n=2&last=B")
    assert r.json()["tags"] == ["a", "b"]
    r = reg.get("/v2/acme/app/tags/list?n=2&last=b")
    assert r.json()["tags"] == ["c"] and "Link" not in r
    assert reg.get("/v2/acme/app/tags/list?n=0").json()["tags"] == []
    r = reg.get("/v2/acme/app/tags/list?n=abc")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    assert reg.get("/v2/acme/nothere/tags/list").json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_catalog_lists_only_the_callers_tenants(reg, make_reg):
    for repo in ["zeta", "alpha", "team/web", "team/api"]:
        reg.push_blob(repo, b"x")
    other = make_tenant("globex")
    outsider = make_reg("owner", tenant_obj=other, username="mallory")
    outsider.prefix = "/v2/globex"
    outsider.push_blob("secret", b"y")
    r = reg.get("/v2/_catalog")
    assert r.json() == {"repositories": ["acme/alpha", "acme/team/api", "acme/team/web", "acme/zeta"]}
    r = reg.get("/v2/_catalog?n=2")
    assert r.json()["repositories"] == ["acme/alpha", "acme/team/api"]
    assert r["Link"] == '</v2/_catalog?n=2&last=acme%2Fteam%2Fapi>; rel="next"'
    assert reg.get("/v2/_catalog?n=2&last=acme/team/api").json()["repositories"] == ["acme/team/web", "acme/zeta"]
    assert outsider.get("/v2/_catalog").json() == {"repositories": ["globex/secret"]}
    assert Reg(Client(), None).get("/v2/_catalog").status_code == 401


def test_host_based_tenant_endpoint(reg, settings):
    settings.REGISTRY_DOMAIN = "registry.test"
    settings.ALLOWED_HOSTS = [".registry.test", "testserver"]
    digest, payload = reg.push_image("app", "1", [b"layer"])
    host = {"HTTP_HOST": "acme.registry.test"}
    r = reg.get("/v2/app/manifests/1", **host)
    assert r.status_code == 200 and r.content == payload
    assert reg.get("/v2/app/tags/list", **host).json() == {"name": "app", "tags": ["1"]}
    assert reg.get("/v2/_catalog", **host).json() == {"repositories": ["app"]}
    r = reg.post("/v2/team/tool/blobs/uploads/", **host)
    assert r.status_code == 202 and r["Location"].startswith("/v2/team/tool/blobs/uploads/")
    assert reg.get("/v2/app/manifests/1", HTTP_HOST="nobody.registry.test").status_code == 403


def test_a_nul_in_last_is_a_400_not_a_500(reg):
    reg.push_image("app", "a", [b"layer"])
    reg.client.raise_request_exception = False
    for last in ("a%00b", "%00"):
        r = reg.get(f"/v2/acme/app/tags/list?n=10&last={last}")
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "TAG_INVALID", r.content
    assert reg.get("/v2/acme/app/tags/list?last=zzz~").json()["tags"] == []  # a cursor past the end is fine


def test_a_referrers_filter_no_manifest_can_match_finds_nothing(reg):
    subject, _ = reg.push_image("app", "v1", [b"layer"])
    reg.client.raise_request_exception = False
    for artifact_type in ("application/x%00y", "application/" + "x" * 300):
        r = reg.get(f"/v2/acme/app/referrers/{subject}?artifactType={artifact_type}")
        assert r.status_code == 200, r.content
        assert r.json()["manifests"] == [] and r["OCI-Filters-Applied"] == "artifactType"
    assert reg.get(f"/v2/acme/nothere/referrers/{subject}?artifactType=a%00").json()["errors"][0]["code"] == "NAME_UNKNOWN"
