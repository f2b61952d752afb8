"""The registry access matrix: every identity × every operation × how the credential travels.

One world per case: acme/app:1, acme/team/app:1 and acme/base (private), an upload session in
each acme repository, globex/base with a layer. A denied operation answers 401 (Bearer, or no or
bad credentials) or 403 (valid Basic credentials) and changes no database row and no object.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from django.apps import apps
from django.test import Client

from accounts.models import User
from accounts.services import access_token_issue, access_token_revoke, robot_create
from accounts.tokens import token_sign
from gateway.registry.models import RepositoryBlob
from gateway.storage import keys
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic, sha

pytestmark = pytest.mark.django_db
SERVICE = "testserver"

OPS = ("pull", "head_blob", "tags", "push", "upload_status", "delete", "mount", "mount_other_tenant", "catalog")
EXPECTED = {
    # What a Bearer token from /auth/token gets.  pull head tags push status delete mount other catalog
    "anonymous": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "other_tenant": (401, 401, 401, 401, 401, 401, 401, 401, 200),
    "no_membership": (401, 401, 401, 401, 401, 401, 401, 401, 200),
    "staff": (401, 401, 401, 401, 401, 401, 401, 401, 200),
    "reader": (200, 200, 200, 401, 401, 401, 401, 401, 200),
    "pull_only_token": (200, 200, 200, 401, 401, 401, 401, 401, 200),
    "writer": (200, 200, 200, 202, 204, 401, 201, 202, 200),
    "admin": (200, 200, 200, 202, 204, 202, 201, 202, 200),
    "owner": (200, 200, 200, 202, 204, 202, 201, 202, 200),
    "robot_pull": (200, 200, 200, 401, 401, 401, 401, 401, 200),
    "robot_outside_pattern": (401, 401, 401, 401, 401, 401, 401, 401, 200),
    "robot_in_pattern": (200, 200, 200, 202, 204, 401, 202, 202, 200),  # mount from acme/base: outside, so an upload
    "revoked_token": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "mis_scoped_token": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "expired": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "unknown_key": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "tampered": (401, 401, 401, 401, 401, 401, 401, 401, 401),
    "alg_none": (401, 401, 401, 401, 401, 401, 401, 401, 401),
}
ALL_ACME = ["acme/app", "acme/base", "acme/team/app"]
CATALOG = {
    "other_tenant": ["globex/base"],
    "no_membership": [],
    "staff": [],
    "robot_outside_pattern": ["acme/team/app"],
    "robot_in_pattern": ["acme/team/app"],
}
FORGED = ("expired", "unknown_key", "tampered", "alg_none")
# Identities with a username and secret can also send them as Basic on /v2/.
BASIC = (
    "other_tenant",
    "no_membership",
    "staff",
    "reader",
    "pull_only_token",
    "writer",
    "admin",
    "owner",
    "robot_pull",
    "robot_outside_pattern",
    "robot_in_pattern",
    "revoked_token",
)
CASES = [
    *[("anonymous", "none")],
    *[(identity, "bearer") for identity in EXPECTED],
    *[(identity, "basic") for identity in BASIC],
]


def _scopes(op: str, repo: str) -> list[str]:
    return {
        "pull": [f"repository:{repo}:pull"],
        "head_blob": [f"repository:{repo}:pull"],
        "tags": [f"repository:{repo}:pull"],
        "push": [f"repository:{repo}:pull,push"],
        "upload_status": [f"repository:{repo}:pull,push"],
        "delete": [f"repository:{repo}:delete"],
        "mount": [f"repository:{repo}:pull,push", "repository:acme/base:pull"],
        "mount_other_tenant": [f"repository:{repo}:pull,push", "repository:globex/base:pull"],
        "catalog": ["registry:catalog:*"],
    }[op]


@pytest.fixture
def world(reg, tenant, owner_token):
    """The repositories, one upload session per acme repository, and one credential per identity."""
    _, app_payload = reg.push_image("app", "1", [b"app layer"])
    _, team_payload = reg.push_image("team/app", "1", [b"team layer"])
    base_layer = reg.push_blob("base", b"acme base layer")
    uploads = {repo: reg.post(f"/v2/acme/{repo}/blobs/uploads/")["Location"] for repo in ("app", "team/app")}
    globex = make_tenant("globex")
    globex_owner = User.objects.get(memberships__tenant=globex)
    globex_token = make_token(globex_owner)
    Reg(Client(), basic(globex_owner.username, globex_token), prefix="/v2/globex").push_blob("base", b"globex layer")
    writer = make_member(tenant, "writer")
    pull_only = make_member(tenant, "writer")
    staff = UserFactory(is_staff=True, is_superuser=True)
    revoked = access_token_issue(user=writer, name="old")
    access_token_revoke(user=writer, token_id=revoked.token.pk)
    robot_pull = robot_create(tenant=tenant, name="ci-pull", scopes=["pull"])
    robot_team = robot_create(tenant=tenant, name="ci-team", scopes=["pull", "push"], repositories=["team/*"])
    creds = {
        "other_tenant": basic(globex_owner.username, globex_token),
        "no_membership": basic(UserFactory().username, "pw-secret-123"),
        "staff": basic(staff.username, "pw-secret-123"),
        "reader": basic(make_member(tenant, "reader").username, "pw-secret-123"),
        "pull_only_token": basic(pull_only.username, make_token(pull_only, scopes=("pull",))),
        "writer": basic(writer.username, make_token(writer)),
        "admin": basic(make_member(tenant, "admin").username, "pw-secret-123"),
        "owner": basic("owner", owner_token),
        "mis_scoped_token": basic("owner", owner_token),
        "robot_pull": basic(robot_pull.username, robot_pull.secret),
        "robot_outside_pattern": basic(robot_team.username, robot_team.secret),
        "robot_in_pattern": basic(robot_team.username, robot_team.secret),
        "revoked_token": basic(writer.username, revoked.secret),
    }
    return {
        "creds": creds,
        "uploads": uploads,
        "base_layer": base_layer,
        "globex_layer": sha(b"globex layer"),
        "blob": {"acme/app": sha(b"app layer"), "acme/team/app": sha(b"team layer")},
        "tenants": (tenant, globex),
        "payloads": (app_payload, team_payload),
    }


def _token(creds: str | None, scopes: list[str]) -> tuple[int, dict]:
    query = "&".join([f"service={SERVICE}", *(f"scope={s}" for s in scopes)])
    r = Client().get(f"/auth/token?{query}", **({"HTTP_AUTHORIZATION": creds} if creds else {}))
    return r.status_code, r.json()


def _forged(kind: str, scopes: list[str]) -> str:
    """A token for every action on `scopes` that must not verify: expired, signed by a stranger, tampered, or unsigned."""
    access = [{"type": s.split(":")[0], "name": s.split(":")[1], "actions": ["pull", "push", "delete", "*"]} for s in scopes]
    now = int(time.time())
    if kind == "unknown_key":
        from cryptography.hazmat.primitives.asymmetric import ec

        claims = {"iss": "x", "sub": "owner", "aud": SERVICE, "iat": now, "nbf": now, "exp": now + 300, "access": access}
        return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "not-ours"})
    signed = token_sign(subject="owner", audience=SERVICE, access=[])
    header, payload, signature = signed.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    if kind == "expired":
        from accounts import token_keys

        key = token_keys.signing_key()
        claims.update(access=access, exp=now - 120, iat=now - 300, nbf=now - 300)
        return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    claims["access"] = access
    new_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    if kind == "tampered":
        return f"{header}.{new_payload}.{signature}"
    none = {"alg": "none", "typ": "JWT", "kid": jwt.get_unverified_header(signed.token)["kid"]}
    return base64.urlsafe_b64encode(json.dumps(none).encode()).rstrip(b"=").decode() + f".{new_payload}."


def _client(identity: str, transport: str, op: str, repo: str, world: dict) -> Reg:
    creds = world["creds"].get(identity)
    if transport == "none":
        return Reg(Client(), None)
    if transport == "basic":
        return Reg(Client(), creds)
    if identity in FORGED:
        return Reg(Client(), f"Bearer {_forged(identity, _scopes(op, repo))}")
    scopes = ["repository:acme/other:pull,push,delete"] if identity == "mis_scoped_token" else _scopes(op, repo)
    status, doc = _token(creds, scopes)
    if identity == "revoked_token":
        assert status == 401, doc
        return Reg(Client(), creds)  # the token service refuses it; /v2/ must too
    assert status == 200, doc
    return Reg(Client(), f"Bearer {doc['token']}")


def _do(op: str, c: Reg, repo: str, world: dict):
    return {
        "pull": lambda: c.get(f"/v2/{repo}/manifests/1"),
        "head_blob": lambda: c.head(f"/v2/{repo}/blobs/{world['blob'][repo]}"),
        "tags": lambda: c.get(f"/v2/{repo}/tags/list"),
        "push": lambda: c.post(f"/v2/{repo}/blobs/uploads/"),
        "upload_status": lambda: c.get(world["uploads"][repo.removeprefix("acme/")]),
        "delete": lambda: c.delete(f"/v2/{repo}/manifests/1"),
        "mount": lambda: c.post(f"/v2/{repo}/blobs/uploads/?mount={world['base_layer']}&from=acme/base"),
        "mount_other_tenant": lambda: c.post(f"/v2/{repo}/blobs/uploads/?mount={world['globex_layer']}&from=globex/base"),
        "catalog": lambda: c.get("/v2/_catalog"),
    }[op]()


def _state(world: dict, blob_store) -> tuple:
    """Every registry row and every object (and pending multipart upload) of both tenants."""
    rows = tuple(
        (model.__name__, tuple(tuple(sorted(row.items())) for row in model.objects.order_by("pk").values()))
        for model in apps.get_app_config("registry").get_models()
    )
    objects = tuple(
        sorted((o.key, o.size) for t in world["tenants"] for o in blob_store.list(keys.tenant_prefix(t.pk)))
        + sorted((u.key, u.upload_id) for t in world["tenants"] for u in blob_store.list_multipart(keys.tenant_prefix(t.pk)))
    )
    return rows, objects


def _expected(identity: str, transport: str, op: str) -> int:
    code = EXPECTED[identity][OPS.index(op)]
    if transport == "basic" and code == 401 and identity != "revoked_token":
        return 403  # authenticated, not allowed: DENIED
    return code


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(("identity", "transport"), CASES, ids=[f"{i}-{t}" for i, t in CASES])
def test_access_matrix(world, blob_store, identity, transport, op):
    repo = "acme/team/app" if identity == "robot_in_pattern" else "acme/app"
    expected = _expected(identity, transport, op)
    client = _client(identity, transport, op, repo, world)
    before = _state(world, blob_store)
    r = _do(op, client, repo, world)
    assert r.status_code == expected, (
        f"{identity} over {transport}, {op}: got {r.status_code}, expected {expected}: {r.content[:300]!r}"
    )
    if expected >= 400:
        assert _state(world, blob_store) == before, f"{identity} over {transport}, {op}: denied, yet data changed"
        code = "UNAUTHORIZED" if expected == 401 else "DENIED"
        assert op == "head_blob" or r.json()["errors"][0]["code"] == code
        if expected == 401:
            assert r["WWW-Authenticate"].startswith("Bearer realm=")
    if op == "mount_other_tenant" and expected == 202:
        # Never mounted from another tenant: a plain upload session, nothing linked.
        assert not RepositoryBlob.objects.filter(repository__tenant__slug="acme", blob__digest=world["globex_layer"]).exists()
    if op == "catalog" and expected == 200:
        assert r.json()["repositories"] == CATALOG.get(identity, ALL_ACME)
