"""Each operation's success and validation errors: /user, /user/tokens, /tenants."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership, PersonalAccessToken
from accounts.selectors import bearer_secret_check
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_tenant


@pytest.mark.django_db
def test_user_profile_and_memberships(owner, acme, other_tenant, api_read):
    from accounts.services import membership_set

    membership_set(tenant=other_tenant, user=owner, role=Membership.Role.READER)
    body = api_read.get("/api/v1/user").json()
    assert body["username"] == "olivia"
    assert body["email"] == "olivia@example.com"
    assert body["is_staff"] is False
    assert [(m["tenant"], m["role"]) for m in body["memberships"]] == [("acme", "owner"), ("globex", "reader")]


@pytest.mark.django_db
def test_token_create_shows_the_secret_once_and_audits(owner, api_write):
    response = api_write.post(
        "/api/v1/user/tokens",
        {"name": "terraform", "scopes": ["api:read", "api:write"], "repositories": ["team/*"], "expires_in_days": 30},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("wharf_pat_") and body["secret"].startswith(body["prefix"])
    assert body["scopes"] == ["api:read", "api:write"]
    assert body["repositories"] == ["team/*"]
    assert body["expires_at"] is not None and body["revoked_at"] is None
    principal = bearer_secret_check(secret=body["secret"])
    assert principal is not None and principal.user == owner
    event = AuditEvent.objects.filter(action="token.issue").latest("pk")
    assert event.actor == "olivia" and event.detail["token_id"] == body["id"]
    listed = api_write.get("/api/v1/user/tokens").json()["results"]
    assert body["id"] in [t["id"] for t in listed]
    assert all("secret" not in t for t in listed)


@pytest.mark.django_db
def test_token_create_defaults_to_registry_scopes(api_write):
    body = api_write.post("/api/v1/user/tokens", {"name": "docker"}).json()
    assert body["scopes"] == ["pull", "push", "delete"]
    assert body["expires_at"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": "x" * 101}, {"name"}),
        ({"name": "x", "scopes": ["pull", "fly"]}, {"scopes.1"}),
        ({"name": "x", "scopes": []}, {"scopes"}),
        ({"name": "x", "scopes": "pull"}, {"scopes"}),
        ({"name": "x", "expires_in_days": 0}, {"expires_in_days"}),
        ({"name": "x", "expires_in_days": "soon"}, {"expires_in_days"}),
        ({"name": "x", "repositories": [""]}, {"repositories.0"}),
    ],
)
def test_token_create_validation_errors_name_their_fields(api_write, payload, fields):
    before = snapshot()
    body = assert_problem(api_write.post("/api/v1/user/tokens", payload), 400)
    assert {e["field"] for e in body["errors"]} == fields
    assert all(e["message"] and e["code"] for e in body["errors"])
    assert snapshot() == before


@pytest.mark.django_db
def test_token_create_domain_validation_is_a_problem_too(api_write):
    before = snapshot()
    body = assert_problem(api_write.post("/api/v1/user/tokens", {"name": "x", "repositories": ["Team/*"]}), 400)
    assert body["type"] == "urn:wharf:problem:unsupported"
    assert snapshot() == before


@pytest.mark.django_db
def test_token_create_refuses_non_json(api_write):
    response = api_write.client.post(
        "/api/v1/user/tokens", "name=x", content_type="application/x-www-form-urlencoded", **api_write.headers
    )
    assert_problem(response, 415)


@pytest.mark.django_db
def test_token_revoke_is_audited_and_idempotent(owner, api_write):
    from accounts.services import access_token_issue

    victim = access_token_issue(user=owner, name="old", scopes=["api:read"])
    assert api_write.delete(f"/api/v1/user/tokens/{victim.token.pk}").status_code == 204
    assert PersonalAccessToken.objects.get(pk=victim.token.pk).revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke", detail__token_id=victim.token.pk).count() == 1
    assert api_write.delete(f"/api/v1/user/tokens/{victim.token.pk}").status_code == 204
    assert AuditEvent.objects.filter(action="token.revoke", detail__token_id=victim.token.pk).count() == 1
    assert_problem(Api(victim.secret).get("/api/v1/user"), 401)
    assert_problem(api_write.delete("/api/v1/user/tokens/999999"), 404)


@pytest.mark.django_db
def test_tenant_get_and_list(owner, acme, reader):
    make_tenant("initech", owner=owner)
    api = Api(token(reader, ["api:read"]))
    body = api.get("/api/v1/tenants/acme").json()
    assert body == {
        "slug": "acme",
        "name": "acme",
        "status": "active",
        "download_mode": "proxied",
        "storage_quota_bytes": None,
        "created_at": body["created_at"],
        "role": "reader",
    }
    assert [t["slug"] for t in Api(token(owner, ["api:read"])).get("/api/v1/tenants").json()["results"]] == ["acme", "initech"]


@pytest.mark.django_db
def test_unknown_method_is_a_problem(api_write):
    body = assert_problem(api_write.client.put("/api/v1/user", **api_write.headers), 405)
    assert body["type"] == "urn:wharf:problem:method-not-allowed"
