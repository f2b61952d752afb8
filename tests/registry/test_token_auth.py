"""Docker token auth: the token service, Bearer verification, challenges (the access matrix is in test_access_matrix.py)."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import jwt
import pytest
from django.http import HttpResponse
from django.test import Client

from accounts.models import AuditEvent, User
from accounts.services import access_token_issue, access_token_revoke, robot_create, robot_revoke
from accounts.sessions import user_sessions_revoke
from gateway.registry.services.repositories import repository_visibility_set
from gateway.registry.v2 import auth
from tests.factories import make_member
from tests.helpers import Reg, basic

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


def test_login_is_rate_limited_per_account_and_address(tenant, settings, redis_client):
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
    r = c.post(
        "/auth/token",
        {
            "grant_type": "password",
            "username": "owner",
            "password": "pw-secret-123",
            "service": SERVICE,
            "scope": "repository:acme/app:pull",
            "client_id": "docker",
            "access_type": "offline",
        },
    )
    assert r.status_code == 200, r.content
    doc = r.json()
    assert doc["refresh_token"] and doc["scope"] == "repository:acme/app:pull"
    r = c.post(
        "/auth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": doc["refresh_token"],
            "service": SERVICE,
            "scope": "repository:acme/app:pull,push",
            "client_id": "docker",
        },
    )
    assert r.status_code == 200
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["access"][0]["actions"] == ["pull", "push"] and claims["sub"] == "owner"
    r = c.post(
        "/auth/token",
        {"grant_type": "refresh_token", "refresh_token": "wharf_rft_bogus", "service": SERVICE, "client_id": "docker"},
    )
    assert r.status_code == 401
    r = c.post("/auth/token", {"grant_type": "client_credentials", "service": SERVICE})
    assert r.status_code == 400


def test_catalog_needs_the_catalog_scope(reg):
    reg.push_blob("app", b"x")
    _, doc = token_for(Client(), reg.auth, "registry:catalog:*")
    assert Reg(Client(), bearer(doc["token"])).get("/v2/_catalog").json() == {"repositories": ["acme/app"]}
    _, doc = token_for(Client(), reg.auth, "repository:acme/app:pull")
    assert Reg(Client(), bearer(doc["token"])).get("/v2/_catalog").status_code == 401


# --- chunked token requests (skopeo, podman and buildah after `docker login`) --------------------------


def _chunked_post(client: Client, body: bytes, content_type: str = "application/x-www-form-urlencoded", **extra):
    """A POST as gunicorn hands it over for `Transfer-Encoding: chunked`: de-chunked input, no Content-Length."""
    return client.generic(
        "POST",
        "/auth/token",
        b"",
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body)},
        **extra,
    )


def test_a_chunked_token_request_is_read_from_the_wsgi_input(reg):
    reg.push_image("app", "1", [b"x"])
    form = urlencode(
        {
            "grant_type": "password",
            "username": "owner",
            "password": "pw-secret-123",
            "service": SERVICE,
            "scope": "repository:acme/app:pull",
            "client_id": "skopeo",
            "access_type": "offline",
        }
    ).encode()
    r = _chunked_post(Client(), form)
    assert r.status_code == 200, r.content
    refresh = r.json()["refresh_token"]
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": "repository:acme/app:pull,push",
            "client_id": "containers/image",
        }
    ).encode()
    r = _chunked_post(Client(), form)
    assert r.status_code == 200, r.content
    assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["access"][0]["actions"] == ["pull", "push"]
    assert Reg(Client(), bearer(r.json()["access_token"])).get("/v2/acme/app/manifests/1").status_code == 200


@pytest.mark.parametrize(
    "size,content_type,status",
    [
        (64 * 1024 + 1, "application/x-www-form-urlencoded", 413),
        (100, "multipart/form-data; boundary=x", 400),
    ],
)
def test_bad_chunked_token_requests_are_4xx(tenant, size, content_type, status):
    r = _chunked_post(Client(), b"grant_type=password&username=owner&password=" + b"p" * size, content_type=content_type)
    assert r.status_code == status and r.json()["error"] == "invalid_request"
    assert not AuditEvent.objects.filter(action__startswith="login").exists()


def test_a_token_request_with_a_long_content_length_is_413(tenant):
    r = Client().post("/auth/token", "password=" + "p" * 70_000, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "UNSUPPORTED"


# --- NUL bytes -----------------------------------------------------------------------------------------------


def test_nul_bytes_in_token_requests_are_4xx_not_500(tenant):
    c = Client()
    r = c.get(f"/auth/token?service={SERVICE}", HTTP_AUTHORIZATION=basic("ow\x00ner", "pw-secret-123"))
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    for query in ("service=a%00b", "service=testserver&scope=repository:acme/app%00:pull", "scope=%00"):
        r = c.get(f"/auth/token?{query}", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123"))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", query
    base = {"grant_type": "password", "username": "owner", "password": "pw-secret-123", "service": SERVICE}
    for field, value in (
        ("username", "ow\x00ner"),
        ("service", "test\x00server"),
        ("scope", "repository:acme/a\x00pp:pull"),
        ("refresh_token", "wharf_rft_\x00"),
    ):
        form = (
            {**base, field: value}
            if field != "refresh_token"
            else {"grant_type": "refresh_token", field: value, "service": SERVICE}
        )
        r = c.post("/auth/token", urlencode(form), content_type="application/x-www-form-urlencoded")
        assert r.status_code == 400 and "NUL" in r.json()["error_description"], field
        r = _chunked_post(c, urlencode(form).encode())
        assert r.status_code == 400, field
    # A NUL where it is only recorded (the User-Agent of a failed login) is kept, replaced.
    r = c.get(f"/auth/token?service={SERVICE}", HTTP_AUTHORIZATION=basic("owner", "nope"), HTTP_USER_AGENT="evil\x00agent")
    assert r.status_code == 401
    assert AuditEvent.objects.get(action="login.failed").user_agent == "evil\ufffdagent"


# --- one throttled, audited login path; nobody can lock an owner out ---------------------------------------

ATTACKER, OWNER_HOME = "203.0.113.66", "198.51.100.7"


def _token_from(ip: str, auth: str, *scopes: str) -> HttpResponse:
    query = "&".join([f"service={SERVICE}"] + [f"scope={s}" for s in scopes])
    return Client(REMOTE_ADDR=ip).get(f"/auth/token?{query}", HTTP_AUTHORIZATION=auth)


def test_an_attacker_cannot_lock_the_owner_or_their_tokens_out(reg, tenant, owner_token):
    reg.push_image("app", "1", [b"x"])
    c = Client(REMOTE_ADDR=ATTACKER)
    login = {
        "grant_type": "password",
        "username": "owner",
        "password": "pw-secret-123",
        "service": SERVICE,
        "access_type": "offline",
    }
    refresh = Client(REMOTE_ADDR=ATTACKER).post("/auth/token", login).json()["refresh_token"]
    statuses = [_token_from(ATTACKER, basic("owner", f"guess-{i}")).status_code for i in range(50)]
    assert statuses == [401] * 10 + [429] * 40  # GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT (per account and address) = 10
    throttled = _token_from(ATTACKER, basic("owner", "pw-secret-123"))  # even the right password: refused unchecked
    assert throttled.status_code == 429 and 0 < int(throttled["Retry-After"]) <= 300
    assert throttled.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    r = c.post("/auth/token", {**login, "password": "guess"})
    assert r.status_code == 429 and r["Retry-After"]
    # The owner from home, with the password: `docker login` (no scope: audited), Basic on /v2/.
    assert _token_from(OWNER_HOME, basic("owner", "pw-secret-123")).status_code == 200
    assert (
        Client(REMOTE_ADDR=OWNER_HOME)
        .get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123"))
        .status_code
        == 200
    )
    # Tokens from the attacker's own address keep working: a PAT, and the refresh token `docker login` stored.
    assert _token_from(ATTACKER, basic("owner", owner_token), "repository:acme/app:pull").status_code == 200
    assert c.get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=basic("owner", owner_token)).status_code == 200
    r = c.post(
        "/auth/token",
        {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE, "scope": "repository:acme/app:pull"},
    )
    assert r.status_code == 200
    # The audit log holds what was measured: each failure with its counts, throttled attempts sampled with theirs.
    failed = AuditEvent.objects.filter(action="login.failed", actor="owner", ip=ATTACKER).order_by("pk")
    assert [e.detail["failures"]["account_from_address"] for e in failed] == list(range(1, 11))
    assert failed.last().detail["failures"] == {"account_from_address": 10, "address": 10, "account": 10}
    assert failed.last().detail["channel"] == "token" and not failed.last().success
    throttled_rows = AuditEvent.objects.filter(action="login.throttled", actor="owner", ip=ATTACKER).order_by("pk")
    assert [e.detail["throttled_in_window"] for e in throttled_rows] == [1, 2, 4, 8, 16, 32]  # of 42 refused
    assert all(e.detail["retry_after"] > 0 for e in throttled_rows)
    assert AuditEvent.objects.filter(action="login", actor="owner", ip=OWNER_HOME).count() == 1


def test_an_address_spraying_accounts_is_throttled_for_passwords_only(reg, tenant, owner_token):
    reg.push_image("app", "1", [b"x"])
    for i in range(30):  # GATEWAY_LOGIN_MAX_FAILURES_IP = 30
        assert _token_from(ATTACKER, basic(f"victim-{i}", "guess")).status_code == 401
    assert _token_from(ATTACKER, basic("owner", "pw-secret-123")).status_code == 429
    assert _token_from(ATTACKER, basic("owner", owner_token), "repository:acme/app:pull").status_code == 200
    assert _token_from(OWNER_HOME, basic("owner", "pw-secret-123")).status_code == 200


def test_wrong_tokens_never_count_against_passwords_and_are_audited_sampled(reg, tenant):
    for i in range(20):
        assert _token_from(ATTACKER, basic("owner", f"wharf_pat_revoked{i}")).status_code == 401
    assert _token_from(ATTACKER, basic("owner", "pw-secret-123")).status_code == 200
    rows = AuditEvent.objects.filter(action="login.failed", ip=ATTACKER).order_by("pk")
    assert [e.detail["token_failures_from_address"] for e in rows] == [1, 2, 4, 8, 16]
    assert {e.detail["reason"] for e in rows} == {"invalid token"}


# --- the catalog honours repository patterns ------------------------------------------------------------------


def test_the_catalog_lists_only_what_a_tokens_patterns_reach(reg, tenant):
    for name in ("app", "team/api", "team/web", "tools/x", "zz/team/hidden"):
        reg.push_blob(name, name.encode())
    user = User.objects.get(username="owner")
    pat = access_token_issue(user=user, name="team", scopes=["pull"], repositories=["team/*", "tools/?"]).secret
    robot = robot_create(tenant=tenant, name="ci-team", scopes=["pull"], repositories=["team/w*"])
    expected = {
        basic("owner", pat): ["acme/team/api", "acme/team/web", "acme/tools/x"],
        basic(robot.username, robot.secret): ["acme/team/web"],
        reg.auth: ["acme/app", "acme/team/api", "acme/team/web", "acme/tools/x", "acme/zz/team/hidden"],  # unrestricted token
    }
    for credential, names in expected.items():
        assert Reg(Client(), credential).get("/v2/_catalog").json()["repositories"] == names  # Basic
        _, doc = token_for(Client(), credential, "registry:catalog:*")
        assert Reg(Client(), bearer(doc["token"])).get("/v2/_catalog").json()["repositories"] == names  # Bearer
    # Pages skip what the patterns exclude and still fill up.
    r = Reg(Client(), basic("owner", pat)).get("/v2/_catalog?n=2")
    assert r.json()["repositories"] == ["acme/team/api", "acme/team/web"] and "last=acme%2Fteam%2Fweb" in r["Link"]
    assert Reg(Client(), basic("owner", pat)).get("/v2/_catalog?n=2&last=acme/team/web").json()["repositories"] == [
        "acme/tools/x"
    ]


def test_a_catalog_token_dies_with_its_personal_access_token(reg, tenant):
    reg.push_blob("team/api", b"x")
    user = User.objects.get(username="owner")
    issued = access_token_issue(user=user, name="team", scopes=["pull"], repositories=["team/*"])
    _, doc = token_for(Client(), basic("owner", issued.secret), "registry:catalog:*")
    c = Reg(Client(), bearer(doc["token"]))
    assert c.get("/v2/_catalog").status_code == 200
    access_token_revoke(user=user, token_id=issued.token.pk)
    auth.forget_cached_credentials()  # what SESSION_CHECK_SECONDS (5 s) does in production
    r = c.get("/v2/_catalog")
    assert r.status_code == 401 and 'error="invalid_token"' in r["WWW-Authenticate"]


# --- revoking every session of a user at once --------------------------------------------------------------


def test_revoking_sessions_ends_bearer_and_refresh_tokens_at_once_and_a_new_login_works(reg, tenant):
    reg.push_image("app", "1", [b"x"])
    user = User.objects.get(username="owner")
    login = {
        "grant_type": "password",
        "username": "owner",
        "password": "pw-secret-123",
        "service": SERVICE,
        "scope": "repository:acme/app:pull",
        "access_type": "offline",
    }
    doc = Client().post("/auth/token", login).json()
    old = Reg(Client(), bearer(doc["access_token"]))
    assert old.get("/v2/acme/app/manifests/1").status_code == 200
    _, pat_doc = token_for(Client(), reg.auth, "repository:acme/app:pull")  # a bearer token from a PAT login
    assert Reg(Client(), bearer(pat_doc["token"])).get("/v2/acme/app/manifests/1").status_code == 200

    revoked = user_sessions_revoke(user=user, actor="owner")
    assert revoked.refresh_tokens == 1 and revoked.session_epoch == 1
    auth.forget_cached_credentials()  # what SESSION_CHECK_SECONDS (5 s) does in production
    for token in (doc["access_token"], pat_doc["token"]):
        r = Reg(Client(), bearer(token)).get("/v2/acme/app/manifests/1")
        assert r.status_code == 401 and 'error="invalid_token"' in r["WWW-Authenticate"]
    r = Client().post("/auth/token", {"grant_type": "refresh_token", "refresh_token": doc["refresh_token"], "service": SERVICE})
    assert r.status_code == 401
    # A new login (password or the same PAT) works at once.
    fresh = Client().post("/auth/token", login).json()["access_token"]
    assert Reg(Client(), bearer(fresh)).get("/v2/acme/app/manifests/1").status_code == 200
    _, pat_doc = token_for(Client(), reg.auth, "repository:acme/app:pull")
    assert Reg(Client(), bearer(pat_doc["token"])).get("/v2/acme/app/manifests/1").status_code == 200
    event = AuditEvent.objects.get(action="sessions.revoke")
    assert event.target == "owner" and event.detail == {"refresh_tokens": 1, "session_epoch": 1}


def test_bearer_tokens_of_a_revoked_robot_or_deactivated_user_stop_verifying(reg, tenant):
    reg.push_image("app", "1", [b"x"])
    robot = robot_create(tenant=tenant, name="ci", scopes=["pull"])
    _, robot_doc = token_for(Client(), basic(robot.username, robot.secret), "repository:acme/app:pull")
    _, user_doc = token_for(Client(), basic("owner", "pw-secret-123"), "repository:acme/app:pull")
    for doc in (robot_doc, user_doc):
        assert Reg(Client(), bearer(doc["token"])).get("/v2/acme/app/manifests/1").status_code == 200
    robot_revoke(tenant=tenant, name="ci")
    User.objects.filter(username="owner").update(is_active=False)
    auth.forget_cached_credentials()
    for doc in (robot_doc, user_doc):
        assert Reg(Client(), bearer(doc["token"])).get("/v2/acme/app/manifests/1").status_code == 401


@pytest.mark.parametrize(
    "extra",
    [
        {"CONTENT_LENGTH": "abc"},
        {"CONTENT_LENGTH": "-5"},
        {"CONTENT_TYPE": "multipart/form-data; boundary=zz"},  # no such boundary in the body
        {"CONTENT_TYPE": "multipart/form-data"},  # no boundary at all
    ],
)
def test_malformed_token_request_bodies_are_400(tenant, extra):
    r = Client().generic(
        "POST",
        "/auth/token",
        b"grant_type=password&username=owner&password=x",
        content_type="application/x-www-form-urlencoded",
        **extra,
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert r.json()["error"] in ("invalid_request", "unsupported_grant_type")  # an unparseable form is an empty one


def test_a_nul_in_the_catalogs_last_is_400(reg):
    reg.push_blob("app", b"x")
    r = reg.get("/v2/_catalog?n=5&last=acme/%00")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
