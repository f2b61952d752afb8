"""/v2/ and HTTP Basic credentials, which registry endpoints accept beside Bearer tokens."""

import pytest

from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db


def test_v2_challenges_anonymous_clients(anon):
    r = anon.get("/v2/")
    assert r.status_code == 401
    assert r["WWW-Authenticate"].startswith('Bearer realm="http://127.0.0.1:8000/auth/token"')
    assert r["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_v2_answers_200_with_a_token_or_a_password(reg, tenant, client):
    assert reg.get("/v2/").status_code == 200
    assert Reg(client, basic("owner", "pw-secret-123")).get("/v2/").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        basic("owner", "wrong"),
        basic("nobody", "pw-secret-123"),
        "Basic !!!notbase64",
        "Basic " + "b3duZXI=",
        "Digest abc",
        basic("owner", "wharf_pat_bogus"),
    ],
)
def test_bad_credentials_are_401_without_saying_which_part_is_wrong(tenant, client, header):
    r = client.get("/v2/", HTTP_AUTHORIZATION=header)
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "owner" not in r.content.decode()


def test_revoked_token_stops_working_once_the_cache_expires(tenant, client):
    from accounts.models import User
    from accounts.services import access_token_issue, access_token_revoke
    from gateway.registry.v2 import auth

    user = User.objects.get(username="owner")
    issued = access_token_issue(user=user, name="t")
    r = Reg(client, basic("owner", issued.secret))
    assert r.get("/v2/").status_code == 200
    access_token_revoke(user=user, token_id=issued.token.pk)
    auth.forget_cached_credentials()  # what CACHE_SECONDS does in production
    assert r.get("/v2/").status_code == 401


def test_unknown_tenant_looks_like_a_forbidden_one(reg, anon):
    assert reg.get("/v2/nosuchtenant/app/manifests/1").status_code == 403
    assert anon.get("/v2/nosuchtenant/app/manifests/1").status_code == 401


def test_password_guessing_through_v2_is_throttled_and_audited_like_the_token_service(reg, tenant):
    from django.test import Client

    from accounts.models import AuditEvent

    reg.push_image("app", "1", [b"x"])
    attacker = Client(REMOTE_ADDR="203.0.113.40")
    statuses = [
        attacker.get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=basic("owner", f"guess-{i}")).status_code for i in range(40)
    ]
    assert statuses == [401] * 10 + [429] * 30
    r = attacker.get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123"))
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS" and r["Docker-Distribution-API-Version"] == "registry/2.0"
    # The same counters as /auth/token: that address is refused there too.
    assert attacker.get("/auth/token?service=testserver", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123")).status_code == 429
    failed = AuditEvent.objects.filter(action="login.failed", actor="owner", ip="203.0.113.40")
    assert failed.count() == 10 and {e.detail["channel"] for e in failed} == {"v2"}
    assert AuditEvent.objects.filter(action="login.throttled", ip="203.0.113.40").exists()
    # Another address is not affected.
    assert (
        Client(REMOTE_ADDR="198.51.100.40")
        .get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=basic("owner", "pw-secret-123"))
        .status_code
        == 200
    )


@pytest.mark.parametrize("header", [basic("ow\x00ner", "pw-secret-123"), basic("\x00", "x"), basic("owner\x00", "wharf_pat_x")])
def test_a_nul_in_a_basic_username_is_401_not_500(tenant, client, header):
    r = client.get("/v2/acme/app/manifests/1", HTTP_AUTHORIZATION=header)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert client.get("/v2/", HTTP_AUTHORIZATION=header).status_code == 401
