"""Idempotency-Key on every POST (gateway/api/idempotency.py, base.ApiView): replay, 422, 409, per caller, what is stored."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.models import AuditEvent, PersonalAccessToken, RobotAccount
from gateway.api.redis_store import api_redis
from gateway.core.errors import Conflict
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import UserFactory

TOKENS = "/api/v1/user/tokens"
BODY = {"name": "ci", "scopes": ["pull"]}


def _key(value: str) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": value}


def _count(name: str = "ci") -> int:
    return PersonalAccessToken.objects.filter(name=name).count()


@pytest.mark.django_db
def test_same_key_and_body_replays_the_first_response_once_done(api_write, acme):
    first = api_write.post(TOKENS, BODY, **_key("k-1"))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    # the same JSON with its keys in another order is the same body
    again = api_write.post(TOKENS, {"scopes": ["pull"], "name": "ci"}, **_key("k-1"))
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # the secret too: the client that lost the first answer gets it
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again["X-Request-ID"] != first["X-Request-ID"] and "RateLimit-Remaining" in again
    assert _count() == 1 and AuditEvent.objects.filter(action="token.issue", target__contains="/ci (").count() == 1


@pytest.mark.django_db
def test_replayed_headers_are_the_results_own(acme, api_write, monkeypatch):
    """Location and ETag of the first answer come back; the request id and rate limit are the retry's own."""
    from rest_framework.response import Response

    from gateway.api.views.tokens import TokenCreateApi

    def post(self, request):
        return Response({"made": True}, status=201, headers={"Location": "/api/v1/x/1", "ETag": '"abc"', "X-Other": "no"})

    monkeypatch.setattr(TokenCreateApi, "post", post)
    first = api_write.post(TOKENS, BODY, **_key("k-h"))
    again = api_write.post(TOKENS, BODY, **_key("k-h"))
    assert (again.status_code, again.json(), again["Location"], again["ETag"]) == (201, {"made": True}, "/api/v1/x/1", '"abc"')
    assert "X-Other" in first and "X-Other" not in again


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [(TOKENS, {"name": "other", "scopes": ["pull"]}), ("/api/v1/tenants/acme/robots", BODY)],
    ids=["another-body", "another-path"],
)
def test_same_key_for_another_request_is_422(api_write, acme, path, body):
    assert api_write.post(TOKENS, BODY, **_key("k-2")).status_code == 201
    before = snapshot()
    problem = assert_problem(api_write.post(path, body, **_key("k-2")), 422)
    assert "Idempotency-Key" in problem["detail"]
    assert snapshot() == before


@pytest.mark.django_db
def test_keys_are_per_caller(acme, owner):
    mine, theirs = Api(token(owner, ["api:write"])), Api(token(UserFactory(username="zed"), ["api:write"]))
    assert mine.post(TOKENS, BODY, **_key("shared")).status_code == 201
    response = theirs.post(TOKENS, BODY, **_key("shared"))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert _count() == 2
    # the same user's other token shares the user's keys (a CI job that retries with a fresh token is one caller)
    assert Api(token(owner, ["api:write"])).post(TOKENS, BODY, **_key("shared"))["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_robots_have_their_own_keys(acme, owner):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="r", scopes=["api:write"]).secret)
    Api(token(owner, ["api:write"])).post(TOKENS, BODY, **_key("k-r"))
    response = robot.post(TOKENS, BODY, **_key("k-r"))  # robots have no personal tokens: 403, not the user's replay
    assert_problem(response, 403)
    assert "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_validation_errors_are_replayed_too(api_write, acme):
    first = assert_problem(api_write.post(TOKENS, {"name": ""}, **_key("k-bad")), 400)
    again = api_write.post(TOKENS, {"name": ""}, **_key("k-bad"))
    assert again["Idempotent-Replayed"] == "true" and assert_problem(again, 400)["errors"] == first["errors"]
    assert again["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
def test_server_errors_and_transient_conflicts_are_not_stored(api_write, acme, monkeypatch):
    from gateway.api.views import tokens

    real = tokens.access_token_issue
    failures = iter([RuntimeError("storage down"), Conflict("busy")])

    def flaky(**kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return real(**kwargs)

    monkeypatch.setattr(tokens, "access_token_issue", flaky)
    assert_problem(api_write.post(TOKENS, BODY, **_key("k-5")), 500)
    assert_problem(api_write.post(TOKENS, BODY, **_key("k-5")), 409)
    response = api_write.post(TOKENS, BODY, **_key("k-5"))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert _count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"], ids=["empty", "too-long", "non-ascii", "control"])
def test_invalid_keys_are_400(api_write, acme, key):
    before = snapshot()
    problem = assert_problem(api_write.post(TOKENS, BODY, **_key(key)), 400)
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert snapshot() == before


@pytest.mark.django_db
def test_longest_key_is_fine_and_kept_24h(api_write, acme, owner):
    assert api_write.post(TOKENS, BODY, **_key("~" * 255)).status_code == 201
    [stored] = list(api_redis().scan_iter(match=f"wharf:api:idem:user:{owner.pk}:*"))
    assert 24 * 3600 - 60 < api_redis().ttl(stored) <= 24 * 3600


@pytest.mark.django_db
def test_without_a_key_every_post_runs(api_write, acme):
    assert api_write.post(TOKENS, BODY).status_code == 201
    assert api_write.post(TOKENS, BODY).status_code == 201
    assert _count() == 2


@pytest.mark.django_db
def test_a_key_on_other_methods_is_ignored(api_write, acme, owner):
    victim = PersonalAccessToken.objects.get(pk=api_write.post(TOKENS, BODY).json()["id"])
    assert api_write.delete(f"{TOKENS}/{victim.pk}", **_key("k-d")).status_code == 204
    assert api_write.get(TOKENS, **{}).status_code == 200
    assert not list(api_redis().scan_iter(match="wharf:api:idem:*"))


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "api_read"])
def test_denied_requests_store_nothing(request, acme, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    before = snapshot()
    assert api.post(TOKENS, BODY, **_key("k-x")).status_code in (401, 403)
    assert snapshot() == before
    assert not list(api_redis().scan_iter(match="wharf:api:idem:*"))


@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_is_in_flight_is_409(acme, owner, monkeypatch):
    from gateway.api.views import robots

    api = Api(token(owner, ["api:write"]))
    real, entered, release = robots.robot_create, threading.Event(), threading.Event()

    def slow(**kwargs):
        entered.set()
        release.wait(timeout=20)
        return real(**kwargs)

    monkeypatch.setattr(robots, "robot_create", slow)
    path, body, first = "/api/v1/tenants/acme/robots", {"name": "ci", "scopes": ["pull"]}, {}

    def run() -> None:
        try:
            first["response"] = api.post(path, body, **_key("k-slow"))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert entered.wait(timeout=20)
        problem = assert_problem(api.post(path, body, **_key("k-slow")), 409)
        assert "in progress" in problem["detail"]
    finally:
        release.set()
        thread.join(timeout=30)
    assert first["response"].status_code == 201
    again = api.post(path, body, **_key("k-slow"))
    assert again.status_code == 201 and again.json() == first["response"].json()
    assert RobotAccount.objects.filter(tenant=acme, name="ci").count() == 1


@pytest.mark.django_db
def test_redis_down_is_503_with_retry_after(api_write, acme, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    before = snapshot()
    response = api_write.post(TOKENS, BODY, **_key("k-503"))
    assert assert_problem(response, 503) and response["Retry-After"]
    assert snapshot() == before
    assert api_write.post(TOKENS, BODY).status_code == 201  # without a key nothing needs Redis (rate limits fail open)


def test_a_finished_request_never_overwrites_another_requests_claim(settings):
    """A request slower than the claim's lifetime: if another took the key since, its claim stands; if nobody did, the result is kept."""
    from django.http import HttpResponse

    from gateway.api.idempotency import Claim, idempotency_store

    client, key = api_redis(), "wharf:api:idem:user:0:test"
    mine = Claim(redis_key=key, fingerprint="f", claim="mine")
    client.set(key, "theirs")
    idempotency_store(mine, HttpResponse(b"{}", status=201))
    assert client.get(key) == b"theirs"
    idempotency_store(mine, HttpResponse(status=500))
    assert client.get(key) == b"theirs"
    client.delete(key)
    idempotency_store(mine, HttpResponse(b"{}", status=201))
    assert b'"status": 201' in client.get(key)
    client.set(key, "mine")
    idempotency_store(mine, HttpResponse(status=503))
    assert client.get(key) is None
