"""Admin API fixtures: a tenant with members of each role, and tokens with and without API scopes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Membership, PersonalAccessToken, RobotAccount, Tenant
from accounts.services import access_token_issue, access_token_revoke
from tests.factories import UserFactory, make_member, make_tenant


class Api:
    """A test client that sends `Authorization: Bearer <secret>` (or nothing) and JSON bodies."""

    def __init__(self, secret: str | None = None, client: Client | None = None) -> None:
        self.client = client or Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}

    def get(self, path: str, **params):
        return self.client.get(path, params, **self.headers)

    def post(self, path: str, body=None, **extra):
        return self.client.post(path, body or {}, content_type="application/json", **self.headers, **extra)

    def patch(self, path: str, body=None, **extra):
        return self.client.patch(path, body or {}, content_type="application/json", **self.headers, **extra)

    def delete(self, path: str, **extra):
        return self.client.delete(path, **self.headers, **extra)


@pytest.fixture(autouse=True)
def _clear_api_counters():
    """Rate-limit windows and Idempotency-Key records live in Redis beyond a test's transaction (and its ids are reused
    by the next run's fresh database): no test may inherit another's."""
    from gateway.api.redis_store import api_redis

    client = api_redis()
    for key in client.scan_iter(match="wharf:api:*"):
        client.delete(key)
    yield


def token(user, scopes, **kwargs) -> str:
    return access_token_issue(user=user, name="t", scopes=list(scopes), **kwargs).secret


@pytest.fixture
def owner(db):
    return UserFactory(username="olivia")


@pytest.fixture
def acme(owner) -> Tenant:
    return make_tenant("acme", owner=owner)


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("globex")


@pytest.fixture
def reader(acme):
    return make_member(acme, Membership.Role.READER, username="rita")


@pytest.fixture
def api_read(owner) -> Api:
    return Api(token(owner, ["api:read"]))


@pytest.fixture
def api_write(owner) -> Api:
    return Api(token(owner, ["api:write"]))


@pytest.fixture
def registry_only(owner) -> Api:
    return Api(token(owner, ["pull", "push", "delete"]))


@pytest.fixture
def revoked(owner) -> Api:
    issued = access_token_issue(user=owner, name="gone", scopes=["api:read", "api:write"])
    access_token_revoke(user=owner, token_id=issued.token.pk)
    return Api(issued.secret)


@pytest.fixture
def expired(owner) -> Api:
    issued = access_token_issue(user=owner, name="old", scopes=["api:read", "api:write"], expires_in_days=1)
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return Api(issued.secret)


@pytest.fixture
def outsider(other_tenant) -> Api:
    """A member of another tenant only, with full API scopes."""
    user = make_member(other_tenant, Membership.Role.OWNER, username="mallory")
    return Api(token(user, ["api:read", "api:write"]))


@pytest.fixture
def staff(db) -> Api:
    user = UserFactory(username="sam", is_staff=True)
    return Api(token(user, ["api:read", "api:write", "admin"]))


def snapshot() -> dict[str, list]:
    """Every row a denied request must leave alone (the audit log may gain the denial itself only)."""
    return {
        "tokens": list(PersonalAccessToken.objects.order_by("pk").values("pk", "name", "revoked_at", "scopes")),
        "tenants": list(Tenant.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values("pk", "tenant_id", "user_id", "role")),
        "robots": list(
            RobotAccount.objects.order_by("pk").values("pk", "revoked_at", "secret_hash", "scopes", "repositories", "expires_at")
        ),
        "audit": list(AuditEvent.objects.exclude(action="login.failed").order_by("pk").values("pk")),
    }


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem with `status`, carrying the request id; returns its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= body.keys()
    assert body["status"] == status
    assert body["type"].startswith("urn:wharf:problem:")
    assert body["request_id"] and body["request_id"] == response["X-Request-ID"]
    return body


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict, str]]:
    """The tasks that starting a job sends (name, kwargs, queue), captured instead of reaching a broker."""
    from gateway.registry.services import jobs

    calls: list[tuple[str, dict, str]] = []

    class App:
        def send_task(self, name, kwargs, queue):
            calls.append((name, kwargs, queue))

    monkeypatch.setattr(jobs, "current_app", App())
    return calls


# The live server (gunicorn) for the tests that drive the API over HTTP (schemathesis, the generated client).
from tests.api.live import live_api, live_tenant  # noqa: E402, F401
