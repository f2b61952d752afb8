"""A suspended tenant (docs/decisions/0023): pulls go on; pushes, mounts and deletes are DENIED naming the suspension."""

from __future__ import annotations

import jwt
import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import robot_create
from accounts.tenant_admin import tenant_reactivate, tenant_suspend
from gateway.registry import access
from gateway.registry.models import Blob, BlobUpload, Manifest, Tag
from tests.helpers import Reg, basic, sha

pytestmark = pytest.mark.django_db
OCI = "application/vnd.oci.image.manifest.v1+json"


def _suspend(tenant) -> None:
    tenant_suspend(tenant=tenant, reason="unpaid invoices", actor="ops")
    access.caches_clear()  # what CACHE_SECONDS does in production


def _reactivate(tenant) -> None:
    tenant_reactivate(tenant=tenant, actor="ops")
    access.caches_clear()


def _bearer(auth: str, scope: str) -> Reg:
    r = Client().get(f"/auth/token?service=testserver&scope={scope}", HTTP_AUTHORIZATION=auth)
    assert r.status_code == 200, r.content
    return Reg(Client(), f"Bearer {r.json()['token']}"), r


def _assert_suspended(response) -> None:
    assert response.status_code == 403, response.content
    (error,) = response.json()["errors"]
    assert error["code"] == "DENIED"
    assert "tenant 'acme' is suspended" in error["message"] and "pulls still work" in error["message"]
    assert "unpaid" not in error["message"]  # the operator's reason is not shown to registry clients


def _rows() -> dict:
    return {
        "blobs": list(Blob.objects.order_by("pk").values_list("pk", flat=True)),
        "manifests": list(Manifest.objects.order_by("pk").values_list("pk", flat=True)),
        "tags": list(Tag.objects.order_by("pk").values_list("pk", "manifest_id")),
        "uploads": list(BlobUpload.objects.order_by("pk").values_list("pk", flat=True)),
    }


def test_push_suspend_denied_pull_works_reactivate_push_works(tenant, reg):
    digest, payload = reg.push_image("app", "v1", [b"layer-one"])
    reg.push_image("base", "v1", [b"base-layer"])
    _suspend(tenant)
    before = _rows()
    layer = b"new layer"
    _assert_suspended(reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(layer)}", layer))  # monolithic
    _assert_suspended(reg.post("/v2/acme/app/blobs/uploads/"))  # start of a chunked upload
    _assert_suspended(reg.post(f"/v2/acme/app/blobs/uploads/?mount={sha(b'base-layer')}&from=acme/base"))
    _assert_suspended(reg.put("/v2/acme/app/manifests/v2", payload, content_type=OCI))
    _assert_suspended(reg.delete(f"/v2/acme/app/manifests/{digest}"))
    _assert_suspended(reg.delete(f"/v2/acme/app/blobs/{sha(b'layer-one')}"))
    assert _rows() == before

    pulled = reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
    assert pulled.status_code == 200 and pulled.content == payload
    assert reg.get(f"/v2/acme/app/blobs/{sha(b'layer-one')}").status_code in (200, 307)
    assert reg.get("/v2/acme/app/tags/list").json()["tags"] == ["v1"]

    _reactivate(tenant)
    reg.push_image("app", "v2", [b"layer-two"])
    assert Tag.objects.filter(tenant=tenant, name="v2").exists()


def test_an_upload_started_before_the_suspension_cannot_go_on(tenant, reg):
    r = reg.post("/v2/acme/app/blobs/uploads/")
    assert r.status_code == 202
    location = r["Location"]
    _suspend(tenant)
    _assert_suspended(reg.patch(location, b"chunk"))
    _assert_suspended(reg.put(f"{location}?digest={sha(b'')}"))


def test_token_flow_grants_pull_and_the_push_shows_the_suspension(tenant, reg, owner_token):
    """Docker asks for pull,push, gets a token, and its first push request answers DENIED with the message (not a bare 401)."""
    reg.push_image("app", "v1", [b"layer-one"])
    before_token = _bearer(basic("owner", owner_token), "repository:acme/app:pull,push")[0]
    _suspend(tenant)
    bearer, response = _bearer(basic("owner", owner_token), "repository:acme/app:pull,push")
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert "pull" in claims["access"][0]["actions"]
    assert bearer.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    _assert_suspended(bearer.post("/v2/acme/app/blobs/uploads/"))
    _assert_suspended(before_token.post("/v2/acme/app/blobs/uploads/"))  # a token from before the suspension too


def test_robots_of_a_suspended_tenant_still_pull(tenant, reg):
    reg.push_image("app", "v1", [b"layer-one"])
    robot = robot_create(tenant=tenant, name="ci", scopes=["pull", "push"])
    _suspend(tenant)
    ci = Reg(Client(), basic("acme+ci", robot.secret))
    assert ci.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    _assert_suspended(ci.post("/v2/acme/app/blobs/uploads/"))


def test_only_callers_who_could_push_learn_of_the_suspension(tenant, reg, make_reg, anon):
    reg.push_image("app", "v1", [b"layer-one"])
    _suspend(tenant)
    reader = make_reg("reader")
    assert reader.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    r = reader.post("/v2/acme/app/blobs/uploads/")
    assert r.status_code == 403 and "suspended" not in r.json()["errors"][0]["message"]
    outsider = make_reg(None, username="mallory")
    assert outsider.post("/v2/acme/app/blobs/uploads/").status_code == 403
    assert "suspended" not in outsider.post("/v2/acme/app/blobs/uploads/").content.decode()
    assert anon.post("/v2/acme/app/blobs/uploads/").status_code == 401


def test_suspension_is_audited_once_and_needs_a_reason(tenant):
    from gateway.core.errors import ValidationError

    with pytest.raises(ValidationError):
        tenant_suspend(tenant=tenant, reason=" ", actor="ops")
    tenant_suspend(tenant=tenant, reason="abuse", actor="ops")
    tenant_suspend(tenant=tenant, reason="again", actor="ops")
    events = AuditEvent.objects.filter(action="tenant.suspend")
    assert [(e.actor, e.detail) for e in events] == [("ops", {"reason": "abuse"})]


def test_the_admin_api_cannot_delete_a_suspended_tenants_tags_either(tenant, reg):
    from tests.api.conftest import Api, assert_problem, token

    reg.push_image("app", "v1", [b"layer-one"])
    owner_api = Api(token(tenant.memberships.get(role="owner").user, ["api:write"]))
    _suspend(tenant)
    before = _rows()
    body = assert_problem(owner_api.delete("/api/v1/tenants/acme/repositories/app/-/tags/v1"), 403)
    assert "is suspended" in body["detail"]
    assert _rows() == before
    _reactivate(tenant)
    assert owner_api.delete("/api/v1/tenants/acme/repositories/app/-/tags/v1").status_code == 204
