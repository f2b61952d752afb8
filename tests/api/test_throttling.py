"""Rate limits (gateway/api/throttling.py): per token for reads and writes apart, per address for those who name nobody."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.api.conftest import Api, assert_problem, snapshot, token

USER = "/api/v1/user"
TOKENS = "/api/v1/user/tokens"


@pytest.fixture(autouse=True)
def _still_clock(monkeypatch):
    """The windows are fixed (a minute each): the clock stands 10 s into one, so no test straddles two."""
    import time

    from gateway.api import throttling

    now = (time.time() // 60) * 60 + 10
    monkeypatch.setattr(throttling, "_now", lambda: now)


def _headers(response) -> tuple[int, int, int]:
    return int(response["RateLimit-Limit"]), int(response["RateLimit-Remaining"]), int(response["RateLimit-Reset"])


@pytest.mark.django_db
@override_settings(GATEWAY_API_RATE_READ=3)
def test_reads_per_token_429_with_retry_after_and_other_tokens_unaffected(owner, acme):
    api = Api(token(owner, ["api:read"]))
    remaining = []
    for _ in range(3):
        response = api.get(USER)
        assert response.status_code == 200
        limit, left, reset = _headers(response)
        assert limit == 3 and reset == 50
        remaining.append(left)
    assert remaining == [2, 1, 0]
    refused = api.get(USER)
    problem = assert_problem(refused, 429)
    assert problem["type"] == "urn:wharf:problem:throttled"
    assert refused["Retry-After"] == "50" and refused["RateLimit-Remaining"] == "0"
    assert refused["RateLimit-Policy"] == '3;w=60;comment="read"'
    other = Api(token(owner, ["api:read"]))  # the same user's other token has its own budget
    assert other.get(USER).status_code == 200


@pytest.mark.django_db
@override_settings(GATEWAY_API_RATE_WRITE=1)
def test_writes_have_their_own_budget(api_write, acme):
    assert api_write.post(TOKENS, {"name": "a", "scopes": ["pull"]}).status_code == 201
    before = snapshot()
    assert_problem(api_write.post(TOKENS, {"name": "b", "scopes": ["pull"]}), 429)
    assert snapshot() == before  # refused before anything was done
    response = api_write.get(TOKENS)
    assert response.status_code == 200 and response["RateLimit-Policy"].endswith('comment="read"')


@pytest.mark.django_db
@override_settings(GATEWAY_API_RATE_ANONYMOUS=2)
def test_unauthenticated_and_bad_tokens_are_limited_per_address(acme, owner, revoked):
    here = Client(REMOTE_ADDR="203.0.113.7")
    assert_problem(Api(client=here).get(USER), 401)
    assert_problem(Api("wharf_pat_not-a-real-token", client=here).get(USER), 401)
    refused = Api(revoked.headers["HTTP_AUTHORIZATION"].split()[1], client=here).get(USER)
    assert_problem(refused, 429) and refused["Retry-After"]
    assert_problem(Api(client=here).post(TOKENS), 429)  # one budget for reads and writes
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")
    assert_problem(Api(client=elsewhere).get(USER), 401)
    # a valid token from the crowded address is counted as itself, not as the address
    assert Api(token(owner, ["api:read"]), client=Client(REMOTE_ADDR="203.0.113.7")).get(USER).status_code == 200


@pytest.mark.django_db
@override_settings(GATEWAY_API_RATE_READ=2)
def test_robots_and_sessions_are_counted_as_themselves(acme, owner, client):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="r", scopes=["api:read"]).secret)
    for _ in range(2):
        assert robot.get("/api/v1/tenants/acme").status_code == 200
    assert_problem(robot.get("/api/v1/tenants/acme"), 429)
    client.force_login(owner)
    for _ in range(2):
        assert client.get(USER).status_code == 200
    assert_problem(client.get(USER), 429)
    assert Api(token(owner, ["api:read"])).get(USER).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"), [(USER, 200), ("/api/v1/tenants/nope", 404), ("/api/v1/tenants/acme/members/olivia", 200)]
)
def test_every_response_carries_the_headers(api_read, acme, path, status):
    response = api_read.get(path)
    assert response.status_code == status
    limit, remaining, reset = _headers(response)
    assert remaining == limit - 1 and 1 <= reset <= 60


@pytest.mark.django_db
def test_denials_carry_the_headers(registry_only, acme):
    response = registry_only.get(USER)
    assert_problem(response, 403)
    assert _headers(response)[1] == _headers(response)[0] - 1


@pytest.mark.django_db
def test_redis_down_lets_requests_through_without_headers(api_read, acme, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = api_read.get(USER)
    assert response.status_code == 200 and "RateLimit-Limit" not in response


def test_test_settings_do_not_throttle_the_suite(settings):
    assert min(settings.GATEWAY_API_RATE_READ, settings.GATEWAY_API_RATE_WRITE, settings.GATEWAY_API_RATE_ANONYMOUS) >= 100_000
