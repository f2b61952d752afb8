"""Registry fixtures: a tenant with members of each role, and an OCI-speaking test client."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import pytest
from django.test import Client

from gateway.registry import access
from gateway.registry.api import auth
from tests.factories import make_member, make_tenant, make_token, UserFactory


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reg:
    """A Django test client speaking to /v2/ as one identity."""

    client: Client
    auth: str | None
    prefix: str = "/v2/acme"

    def h(self, **extra):
        if self.auth:
            extra["HTTP_AUTHORIZATION"] = self.auth
        return extra

    def get(self, path, **extra):
        return self.client.get(path, **self.h(**extra))

    def head(self, path, **extra):
        return self.client.head(path, **self.h(**extra))

    def delete(self, path, **extra):
        return self.client.delete(path, **self.h(**extra))

    def post(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("POST", path, data, content_type=content_type, **self.h(**extra))

    def put(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("PUT", path, data, content_type=content_type, **self.h(**extra))

    def patch(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("PATCH", path, data, content_type=content_type, **self.h(**extra))

    # -- conveniences -----------------------------------------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        r = self.post(f"{self.prefix}/{repo}/blobs/uploads/?digest={digest}", data)
        assert r.status_code == 201, r.content
        return digest

    def push_manifest(self, repo: str, ref: str, doc: dict | bytes, media_type: str | None = None):
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        mt = media_type or (json.loads(payload).get("mediaType") if not isinstance(doc, bytes) else "application/vnd.oci.image.manifest.v1+json")
        return self.put(f"{self.prefix}/{repo}/manifests/{ref}", payload, content_type=mt)

    def push_image(self, repo: str, ref: str, layers: list[bytes], config: bytes = b'{"architecture":"amd64","os":"linux"}') -> tuple[str, bytes]:
        cfg = self.push_blob(repo, config)
        layer_descs = []
        for layer in layers:
            d = self.push_blob(repo, layer)
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(layer)})
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
            "layers": layer_descs,
        }
        payload = json.dumps(doc).encode()
        r = self.push_manifest(repo, ref, payload, "application/vnd.oci.image.manifest.v1+json")
        assert r.status_code == 201, r.content
        return sha(payload), payload


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


@pytest.fixture(autouse=True)
def _clear_caches():
    auth.forget_cached_credentials()
    access.caches_clear()
    yield
    auth.forget_cached_credentials()
    access.caches_clear()


@pytest.fixture
def tenant(db):
    owner = UserFactory(username="owner")
    return make_tenant("acme", owner=owner)


@pytest.fixture
def owner_token(tenant):
    from accounts.models import User

    return make_token(User.objects.get(username="owner"))


@pytest.fixture
def reg(tenant, owner_token):
    return Reg(Client(), basic("owner", owner_token))


@pytest.fixture
def make_reg(tenant):
    def _make(role: str | None = None, scopes=("pull", "push", "delete"), tenant_obj=None, username=None):
        t = tenant_obj or tenant
        kwargs = {"username": username} if username else {}
        user = make_member(t, role, **kwargs) if role else UserFactory(**kwargs)
        return Reg(Client(), basic(user.username, make_token(user, scopes=scopes)))

    return _make


@pytest.fixture
def anon(tenant):
    return Reg(Client(), None)


FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "oci"


def fixture_manifest(name: str, **values: object) -> bytes:
    """A manifest from tests/fixtures/oci with @KEY@ placeholders filled in (exact bytes)."""
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    assert "@" not in text.replace("@sha", ""), f"unfilled placeholder in {name}"
    return text.encode()
