"""Cross-repository mount with token auth: the 401 challenge names `repository:<from>:pull` too, so one token mounts."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.test import Client

from gateway.registry.models import BlobUpload, RepositoryBlob
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db


def _challenge_scopes(header: str) -> list[str]:
    """The scope parameter of a Bearer challenge, split as docker/containerd split it (on spaces)."""
    m = re.search(r'scope="([^"]*)"', header)
    assert m, header
    return m.group(1).split(" ")


def _token(creds: str, scopes: list[str]) -> str:
    query = "&".join(["service=testserver", *(f"scope={quote(s)}" for s in scopes)])
    r = Client().get(f"/auth/token?{query}", HTTP_AUTHORIZATION=creds)
    assert r.status_code == 200, r.content
    return r.json()["token"]


def test_the_mount_challenge_names_both_repositories_and_its_token_mounts(reg, owner_token, anon):
    digest = reg.push_blob("base", b"a layer pushed to acme/base")
    mount = f"/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/base"

    r = anon.post(mount)
    assert r.status_code == 401
    scopes = _challenge_scopes(r["WWW-Authenticate"])
    assert scopes == ["repository:acme/app:pull,push", "repository:acme/base:pull"]

    # A client that follows the challenge asks for exactly those scopes and mounts.
    token = _token(basic("owner", owner_token), scopes)
    sessions = BlobUpload.objects.count()
    r = Reg(Client(), f"Bearer {token}").post(mount)
    assert r.status_code == 201, r.content
    assert r["Location"] == f"/v2/acme/app/blobs/{digest}" and r["Docker-Content-Digest"] == digest
    assert RepositoryBlob.objects.filter(repository__name="app", blob__digest=digest).exists()
    assert BlobUpload.objects.count() == sessions  # no upload session was opened


def test_a_token_without_the_source_scope_falls_back_to_an_upload(reg, owner_token):
    digest = reg.push_blob("base", b"another layer")
    token = _token(basic("owner", owner_token), ["repository:acme/app:pull,push"])
    r = Reg(Client(), f"Bearer {token}").post(f"/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/base")
    assert r.status_code == 202  # silently a normal upload session, as the spec allows
    assert not RepositoryBlob.objects.filter(repository__name="app").exists()


def test_insufficient_scope_challenge_names_the_source_too(reg, owner_token):
    digest = reg.push_blob("base", b"third layer")
    token = _token(basic("owner", owner_token), ["repository:acme/app:pull"])
    r = Reg(Client(), f"Bearer {token}").post(f"/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/base")
    assert r.status_code == 401 and 'error="insufficient_scope"' in r["WWW-Authenticate"]
    assert _challenge_scopes(r["WWW-Authenticate"]) == ["repository:acme/app:pull,push", "repository:acme/base:pull"]


@pytest.mark.parametrize("source", ['acme/base",x="y', "Acme/Base", "acme/base scope", "", "a" * 300])
def test_a_malformed_source_is_not_echoed_into_the_challenge(anon, source):
    r = anon.post(f"/v2/acme/app/blobs/uploads/?mount=sha256:{'0' * 64}&from={quote(source)}")
    assert r.status_code == 401
    assert _challenge_scopes(r["WWW-Authenticate"]) == ["repository:acme/app:pull,push"]
