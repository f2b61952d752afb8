"""Docker token auth: the token service, Bearer verification, challenges, and the access matrix."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from django.test import Client

from accounts.models import AuditEvent, User
from accounts.services import access_token_issue, access_token_revoke, robot_create
from accounts.tokens import token_sign
from gateway.registry.models import Blob, Manifest, RepositoryBlob
from gateway.registry.services.repositories import repository_visibility_set
from tests.factories import make_member, make_tenant, make_token
from tests.registry.conftest import Reg, basic, sha

pytestmark = pytest.mark.django_db
SERVICE = "testserver"


def token_for(client: Client, auth: str | None, *scopes: str, service: str = SERVICE) -> tuple[int, dict]:
    query = "&".join([f"service={service}"] + [f"scope={s}" for s in scopes])
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    r = client.get(f"/auth/token?{query}", **headers)
    return r.status_code, r.json()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_challenge_points_at_the_token_service(anon, reg):
    reg.push_image("app", "1", [b"x"])
    r = anon.get("/v2/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == 'Bearer realm="http://127.0.0.1:8000/auth/token",service="testserver"'
    r = anon.get("/v2/acme/app/manifests/1")
    assert r["WWW-Authenticate"].endswith(',scope="repository:acme/app:pull"')
    r = anon.post("/v2/acme/app/blobs/uploads/")
    assert r["WWW-Authenticate"].endswith(',scope="repository:acme/app:pull,push"')


def test_token_flow_grants_the_intersection(reg, tenant, make_reg):
    reg.push_image("app", "1", [b"x"])
    reader = make_member(tenant, "reader", username="rita")
    status, doc = token_for(Client(), basic("rita", "pw-secret-123"), "repository:acme/app:pull,push,delete")
    assert status == 200
    assert doc["token"] == doc["access_token"] and doc["expires_in"] >= 60 and doc["issued_at"].endswith("Z")
    claims = jwt.decode(doc["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "acme/app", "actions": ["pull"]}]
    assert claims["sub"] == "rita" and claims["aud"] == SERVICE
    assert jwt.get_unverified_header(doc["token"])["alg"] == "ES256" and jwt.get_unverified_header(doc["token"])["kid"]
    c = Reg(Client(), bearer(doc["token"]))
    assert c.get("/v2/acme/app/manifests/1").status_code == 200
    r = c.post("/v2/acme/app/blobs/uploads/")
    assert r.status_code == 401 and 'error="insufficient_scope"' in r["WWW-Authenticate"]
    assert reader.pk


def test_token_is_bound_to_its_service(reg):
    reg.push_image("app", "1", [b"x"])
    _, doc = token_for(Client(), reg.auth, "repository:acme/app:pull", service="other.example")
    r = Reg(Client(), bearer(doc["token"])).get("/v2/acme/app/manifests/1")
    assert r.status_code == 401 and 'error="invalid_token"' in r["WWW-Authenticate"]


def test_wrong_password_is_401_and_audited_without_enumeration(tenant):
    status, doc = token_for(Client(), basic("owner", "nope"), "repository:acme/app:pull")
    status2, doc2 = token_for(Client(), basic("no-such-user", "nope"), "repository:acme/app:pull")
    assert status == status2 == 401
    assert doc["errors"][0]["message"] == doc2["errors"][0]["message"] == "invalid username or password"
    assert AuditEvent.objects.filter(action="login.failed", success=False).count() == 2


def test_login_is_rate_limited_per_account(tenant, settings, redis_client):
    settings.GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT = 3
    for _ in range(3):
        assert token_for(Client(), basic("owner", "bad"))[0] == 401
    r = Client().get(f"/auth/token?service={SERVICE}", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123"))
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"


def test_anonymous_pull_of_public_repositories_only(reg, tenant, anon):
    reg.push_image("app", "1", [b"x"])
    reg.push_image("open", "1", [b"y"])
    repository_visibility_set(tenant=tenant, name="open", visibility="public")
    _, doc = token_for(Client(), None, "repository:acme/open:pull,push", "repository:acme/app:pull")
    claims = jwt.decode(doc["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": "acme/open", "actions": ["pull"]},
        {"type": "repository", "name": "acme/app", "actions": []},
    ]
    c = Reg(Client(), bearer(doc["token"]))
    assert c.get("/v2/acme/open/manifests/1").status_code == 200
    assert c.get("/v2/acme/app/manifests/1").status_code == 401
    assert c.post("/v2/acme/open/blobs/uploads/").status_code == 401
    # Without any token too, as curl would.
    assert anon.get("/v2/acme/open/manifests/1").status_code == 200
    assert anon.get("/v2/acme/app/manifests/1").status_code == 401


def test_oauth_password_and_refresh_grants(reg):
    reg.push_image("app", "1", [b"x"])
    c = Client()
    r = c.post("/auth/token", {"grant_type": "password", "username": "owner", "password": "pw-secret-123", "service": SERVICE,
                              "scope": "repository:acme/app:pull", "client_id": "docker", "access_type": "offline"})
    assert r.status_code == 200, r.content
    doc = r.json()
    assert doc["refresh_token"] and doc["scope"] == "repository:acme/app:pull"
    r = c.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": doc["refresh_token"], "service": SERVICE,
                              "scope": "repository:acme/app:pull,push", "client_id": "docker"})
    assert r.status_code == 200
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["access"][0]["actions"] == ["pull", "push"] and claims["sub"] == "owner"
    r = c.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": "wharf_rft_bogus", "service": SERVICE, "client_id": "docker"})
    assert r.status_code == 401
    r = c.post("/auth/token", {"grant_type": "client_credentials", "service": SERVICE})
    assert r.status_code == 400


def test_catalog_needs_the_catalog_scope(reg):
    reg.push_blob("app", b"x")
    _, doc = token_for(Client(), reg.auth, "registry:catalog:*")
    assert Reg(Client(), bearer(doc["token"])).get("/v2/_catalog").json() == {"repositories": ["acme/app"]}
    _, doc = token_for(Client(), reg.auth, "repository:acme/app:pull")
    assert Reg(Client(), bearer(doc["token"])).get("/v2/_catalog").status_code == 401


# --- the matrix ----------------------------------------------------------------------------------

OPS = ["pull", "push", "delete", "catalog", "tags", "mount_other_tenant"]
EXPECTED = {
    #                 pull push delete catalog tags mount
    "anonymous":      (401, 401, 401, 401, 401, 401),
    "reader":         (200, 401, 401, 200, 200, 401),
    "writer":         (200, 202, 401, 200, 200, 202),
    "admin":          (200, 202, 202, 200, 200, 202),
    "robot_pull":     (200, 401, 401, 200, 200, 401),
    "robot_pattern":  (401, 401, 401, 200, 401, 401),
    "robot_pattern_in_pattern": (200, 202, 401, 200, 200, 202),
    "tenant_b":       (401, 401, 401, 200, 401, 401),
    "expired":        (401, 401, 401, 401, 401, 401),
    "revoked":        (401, 401, 401, 401, 401, 401),
    "unknown_key":    (401, 401, 401, 401, 401, 401),
    "tampered":       (401, 401, 401, 401, 401, 401),
    "alg_none":       (401, 401, 401, 401, 401, 401),
}


def _scope_for(op: str, repo: str) -> list[str]:
    return {
        "pull": [f"repository:{repo}:pull"], "tags": [f"repository:{repo}:pull"], "delete": [f"repository:{repo}:delete"],
        "push": [f"repository:{repo}:pull,push"], "catalog": ["registry:catalog:*"],
        "mount_other_tenant": [f"repository:{repo}:pull,push", "repository:globex/base:pull"],
    }[op]


@pytest.fixture
def world(reg, tenant):
    """acme/app:1 and acme/team/app:1 (private), globex/base with a layer, and one credential per identity."""
    _, app_payload = reg.push_image("app", "1", [b"app layer"])
    reg.push_image("team/app", "1", [b"team layer"])
    globex = make_tenant("globex")
    globex_owner = User.objects.get(memberships__tenant=globex)
    gtoken = make_token(globex_owner)
    Reg(Client(), basic(globex_owner.username, gtoken), prefix="/v2/globex").push_blob("base", b"globex layer")
    creds = {
        "reader": basic(make_member(tenant, "reader").username, "pw-secret-123"),
        "writer": basic((w := make_member(tenant, "writer")).username, make_token(w)),
        "admin": basic(make_member(tenant, "admin").username, "pw-secret-123"),
        "tenant_b": basic(globex_owner.username, gtoken),
    }
    robot = robot_create(tenant=tenant, name="ci-pull", scopes=["pull"])
    creds["robot_pull"] = basic(robot.username, robot.secret)
    robot2 = robot_create(tenant=tenant, name="ci-team", scopes=["pull", "push"], repositories=["team/*"])
    creds["robot_pattern"] = creds["robot_pattern_in_pattern"] = basic(robot2.username, robot2.secret)
    revoked = access_token_issue(user=w, name="old")
    access_token_revoke(user=w, token_id=revoked.token.pk)
    creds["revoked"] = basic(w.username, revoked.secret)
    return {"creds": creds, "app_digest": sha(app_payload), "layer": sha(b"globex layer")}


def _forged(kind: str, repo_scopes: list[dict]) -> str:
    if kind == "expired":
        return _expired_token(repo_scopes)
    if kind == "unknown_key":
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        now = int(time.time())
        return jwt.encode({"iss": "x", "sub": "owner", "aud": SERVICE, "iat": now, "nbf": now, "exp": now + 300, "access": repo_scopes},
                          key, algorithm="ES256", headers={"kid": "not-ours"})
    signed = token_sign(subject="someone", audience=SERVICE, access=[])
    header, payload, signature = signed.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"] = repo_scopes
    new_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    if kind == "tampered":
        return f"{header}.{new_payload}.{signature}"
    none_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", "kid": jwt.get_unverified_header(signed.token)["kid"]}).encode()).rstrip(b"=").decode()
    return f"{none_header}.{new_payload}."


def _expired_token(access: list[dict]) -> str:
    signed = token_sign(subject="owner", audience=SERVICE, access=access, expires_in=60)
    from accounts import tokens

    claims = jwt.decode(signed.token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 120
    claims["iat"] = claims["nbf"] = int(time.time()) - 300
    key = tokens._signing_key() if hasattr(tokens, "_signing_key") else None
    if key is None:
        pytest.skip("accounts.tokens exposes no signing key for forging an expired token")
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})


def _do(op: str, c: Reg, repo: str, world) -> int:
    if op == "pull":
        return c.get(f"/v2/{repo}/manifests/1").status_code
    if op == "tags":
        return c.get(f"/v2/{repo}/tags/list").status_code
    if op == "push":
        return c.post(f"/v2/{repo}/blobs/uploads/").status_code
    if op == "delete":
        return c.delete(f"/v2/{repo}/manifests/1").status_code
    if op == "catalog":
        return c.get("/v2/_catalog").status_code
    r = c.post(f"/v2/{repo}/blobs/uploads/?mount={world['layer']}&from=globex/base")
    return r.status_code


@pytest.mark.parametrize("identity", list(EXPECTED))
def test_access_matrix(world, identity):
    repo = "acme/team/app" if identity == "robot_pattern_in_pattern" else "acme/app"
    snapshot = lambda: (Manifest.objects.count(), Blob.objects.count(), RepositoryBlob.objects.count())  # noqa: E731
    for op, expected in zip(OPS, EXPECTED[identity], strict=True):
        before = snapshot()
        if identity in ("expired", "unknown_key", "tampered", "alg_none"):
            access = [{"type": t, "name": n, "actions": ["pull", "push", "delete", "*"]} for t, n in
                      [(s.split(":")[0], s.split(":")[1]) for s in _scope_for(op, repo)]]
            c = Reg(Client(), bearer(_forged(identity, access)))
        elif identity == "anonymous":
            _, doc = token_for(Client(), None, *_scope_for(op, repo))
            c = Reg(Client(), bearer(doc["token"]))
        else:
            status, doc = token_for(Client(), world["creds"][identity], *_scope_for(op, repo))
            if identity == "revoked":
                assert status == 401
                c = Reg(Client(), world["creds"][identity])
            else:
                assert status == 200, doc
                c = Reg(Client(), bearer(doc["token"]))
        got = _do(op, c, repo, world)
        assert got == expected, f"{identity} {op}: got {got}, expected {expected}"
        if expected >= 400:
            assert snapshot() == before, f"{identity} {op} changed data while denied"
        if op == "mount_other_tenant" and expected == 202:
            # Never mounted from another tenant: a plain upload session, nothing linked.
            assert not RepositoryBlob.objects.filter(repository__tenant__slug="acme", blob__digest=world["layer"]).exists()
        if op == "catalog" and expected == 200:
            names = c.get("/v2/_catalog").json()["repositories"]
            assert all(n.startswith("globex/") for n in names) if identity == "tenant_b" else all(n.startswith("acme/") for n in names)
