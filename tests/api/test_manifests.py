"""Manifests by digest: /api/v1/tenants/{slug}/repositories/{name}/-/manifests/{digest} — detail, delete, errors, access matrix.

Images, an index of two platforms and a referrer artifact are pushed through /v2/ (tests/helpers.py Reg).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Membership
from gateway.registry.models import Manifest, Repository, Tag
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import tag_immutable_set
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic, sha

BASE = "/api/v1/tenants/acme/repositories/team/app/-/manifests"
OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = json.dumps(
    {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "2026-11-30T12:00:00Z",
        "config": {"Labels": {"org.opencontainers.image.source": "https://example.com/app"}},
    }
).encode()


def rows() -> dict[str, list]:
    """snapshot() plus the registry rows a denied request must leave alone."""
    return {
        **snapshot(),
        "tags": list(Tag.objects.order_by("pk").values("pk", "name", "manifest_id", "immutable")),
        "manifests": list(Manifest.objects.order_by("pk").values_list("pk", "digest")),
    }


class Pushed:
    def __init__(self, reg: Reg) -> None:
        self.image, _ = reg.push_image("team/app", "v1", [b"layer-one", b"layer-two"], CONFIG)
        self.amd, amd = reg.push_image("team/app", "amd", [b"amd-layer"], b'{"architecture":"amd64","os":"linux"}')
        self.arm, arm = reg.push_image("team/app", "arm", [b"arm-layer"], b'{"architecture":"arm64","os":"linux"}')
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI, "digest": self.amd, "size": len(amd), "platform": {"architecture": "amd64", "os": "linux"}},
                {
                    "mediaType": OCI,
                    "digest": self.arm,
                    "size": len(arm),
                    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                },
            ],
        }
        payload = json.dumps(index).encode()
        assert reg.push_manifest("team/app", "multi", payload, OCI_INDEX).status_code == 201
        self.index = sha(payload)
        empty = reg.push_blob("team/app", b"{}")
        sbom = reg.push_blob("team/app", b'{"sbom": true}')
        artifact = {
            "schemaVersion": 2,
            "mediaType": OCI,
            "artifactType": "application/spdx+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": 14}],
            "subject": {"mediaType": OCI, "digest": self.image, "size": 1},
        }
        payload = json.dumps(artifact).encode()
        assert reg.push_manifest("team/app", sha(payload), payload, OCI).status_code == 201
        self.sbom = sha(payload)


@pytest.fixture
def pushed(owner, acme) -> Pushed:
    return Pushed(Reg(Client(), basic(owner.username, make_token(owner))))


def _member(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"m-{role}"), scopes))


# -- detail -------------------------------------------------------------------


@pytest.mark.django_db
def test_image_detail_config_layers_referrers_and_tags(acme, pushed, api_read):
    response = api_read.get(f"{BASE}/{pushed.image}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["digest"] == pushed.image and body["media_type"] == OCI
    assert body["artifact_type"] == "application/vnd.oci.image.config.v1+json" and body["subject"] is None
    assert body["size"] == Manifest.objects.get(digest=pushed.image).size and body["pushed_at"]
    assert body["config"] == {
        "media_type": "application/vnd.oci.image.config.v1+json",
        "digest": sha(CONFIG),
        "size": len(CONFIG),
        "os": "linux",
        "architecture": "arm64",
        "variant": "v8",
        "created": "2026-11-30T12:00:00Z",
        "labels": {"org.opencontainers.image.source": "https://example.com/app"},
    }
    assert body["layers"] == [
        {"media_type": LAYER, "digest": sha(b"layer-one"), "size": 9},
        {"media_type": LAYER, "digest": sha(b"layer-two"), "size": 9},
    ]
    assert body["manifests"] == [] and body["tags"] == ["v1"]
    assert body["referrers"] == [
        {"media_type": OCI, "digest": pushed.sbom, "size": body["referrers"][0]["size"], "artifact_type": "application/spdx+json"}
    ]


@pytest.mark.django_db
def test_index_detail_lists_its_platform_children(acme, pushed, api_read):
    body = api_read.get(f"{BASE}/{pushed.index}").json()
    assert body["media_type"] == OCI_INDEX and body["config"] is None and body["layers"] == []
    assert [(m["digest"], m["platform"]) for m in body["manifests"]] == [
        (pushed.amd, {"os": "linux", "architecture": "amd64", "variant": None, "os_version": None}),
        (pushed.arm, {"os": "linux", "architecture": "arm64", "variant": "v8", "os_version": None}),
    ]
    assert body["tags"] == ["multi"] and body["referrers"] == []


@pytest.mark.django_db
def test_artifact_detail_names_its_subject_and_reads_no_foreign_config(acme, pushed, api_read):
    body = api_read.get(f"{BASE}/{pushed.sbom}").json()
    assert body["artifact_type"] == "application/spdx+json" and body["subject"] == pushed.image
    assert body["config"]["media_type"] == "application/vnd.oci.empty.v1+json" and body["config"]["os"] is None
    assert body["layers"] == [{"media_type": "application/spdx+json", "digest": sha(b'{"sbom": true}'), "size": 14}]
    assert body["tags"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["v1", "sha256:" + "0" * 64, "sha256:nothex"])
def test_unknown_or_non_digest_references_are_404(acme, pushed, api_read, ref):
    assert_problem(api_read.get(f"{BASE}/{ref}"), 404)
    assert_problem(api_read.get(f"/api/v1/tenants/acme/repositories/nope/-/manifests/{pushed.image}"), 404)


@pytest.mark.django_db
def test_detail_queries_do_not_grow_with_tags_and_referrers(acme, pushed, api_read, owner):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api_read.get(f"{BASE}/{pushed.image}").status_code == 200
        return len(ctx.captured_queries)

    queries()  # the first use of a token records it (one more write)
    before = queries()
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    payload = bytes(Manifest.objects.get(digest=pushed.image).payload)
    for i in range(5):
        assert reg.push_manifest("team/app", f"more-{i}", payload, OCI).status_code == 201
    assert queries() == before


# -- delete -------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_removes_the_manifest_and_its_tags_through_the_registry(acme, pushed, api_write, owner):
    response = api_write.delete(f"{BASE}/{pushed.index}")
    assert response.status_code == 204, response.content
    assert not Manifest.objects.filter(digest=pushed.index).exists() and not Tag.objects.filter(name="multi").exists()
    event = AuditEvent.objects.filter(action="manifest.delete").latest("pk")
    assert event.actor == "olivia" and event.target == f"team/app@{pushed.index}" and event.detail == {"tags": ["multi"]}
    pull = Reg(Client(), basic(owner.username, make_token(owner)))
    assert pull.get(f"/v2/acme/team/app/manifests/{pushed.index}").status_code == 404
    assert_problem(api_write.delete(f"{BASE}/{pushed.index}"), 404)
    assert api_write.delete(f"{BASE}/{pushed.amd}").status_code == 204  # no index holds it any more


@pytest.mark.django_db
def test_delete_held_by_an_index_an_immutable_tag_or_a_rule_is_a_conflict(acme, pushed, api_write):
    tag_immutable_set(tenant=acme, repository=Repository.objects.get(name="team/app"), name="v1")
    rule = immutable_rule_create(tenant=acme, repository_pattern="team/*", tag_pattern="multi", actor="t")
    before = rows()
    assert "referenced by index" in assert_problem(api_write.delete(f"{BASE}/{pushed.amd}"), 409)["detail"]
    assert "immutable" in assert_problem(api_write.delete(f"{BASE}/{pushed.image}"), 409)["detail"]
    detail = assert_problem(api_write.delete(f"{BASE}/{pushed.index}"), 409)["detail"]
    assert f"immutable-tag rule {rule.pk}" in detail
    assert_problem(api_write.delete(f"{BASE}/v1"), 404)
    assert rows() == before


# -- access matrix ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "outsider", "staff"])
def test_denied_callers_change_nothing(request, acme, pushed, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    status = {"anonymous": 401, "revoked": 401, "expired": 401, "registry_only": 403, "outsider": 404, "staff": 404}[who]
    before = rows()
    assert_problem(api.get(f"{BASE}/{pushed.image}"), status)
    assert_problem(api.delete(f"{BASE}/{pushed.image}"), status)
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.READER, Membership.Role.WRITER])
def test_readers_and_writers_read_but_cannot_delete(acme, pushed, role):
    api = _member(acme, role)
    assert api.get(f"{BASE}/{pushed.image}").status_code == 200
    before = rows()
    assert_problem(api.delete(f"{BASE}/{pushed.image}"), 403)
    assert rows() == before


@pytest.mark.django_db
def test_api_read_token_and_robot_read_but_cannot_delete(acme, pushed, api_read):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read", "api:write"]).secret)
    for api in (api_read, robot):
        assert api.get(f"{BASE}/{pushed.image}").status_code == 200
        before = rows()
        assert_problem(api.delete(f"{BASE}/{pushed.image}"), 403)
        assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_delete(acme, pushed, role):
    api = _member(acme, role, scopes=["api:write"])
    assert api.delete(f"{BASE}/{pushed.sbom}").status_code == 204
    assert AuditEvent.objects.filter(action="manifest.delete", actor=f"m-{role}").exists()


@pytest.mark.django_db
def test_token_repository_patterns_hide_other_repositories(acme, pushed, owner):
    api = Api(token(owner, ["api:read", "api:write"], repositories=["lib/*"]))
    before = rows()
    assert_problem(api.get(f"{BASE}/{pushed.image}"), 404)
    assert_problem(api.delete(f"{BASE}/{pushed.image}"), 404)
    assert rows() == before
