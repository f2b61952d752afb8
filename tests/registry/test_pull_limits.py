"""Pull rate limits (docs/decisions/0040): what counts, the headers, the 429, the window's arithmetic, whose budget."""

from __future__ import annotations

import json
import logging

import pytest
from django.conf import settings
from django.test import Client

from accounts.limits import PULL_WINDOW_SECONDS, TenantLimits
from accounts.models import User
from accounts.services import robot_create, tenant_limits_set
from gateway.registry import access, pull_limits
from gateway.registry.media_types import OCI_INDEX
from gateway.registry.pull_limits import KEY_PREFIX, pull_window_take
from gateway.registry.services import events
from gateway.registry.services.repositories import repository_visibility_set
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic, sha
from tests.registry.test_token_auth import bearer, token_for

W = PULL_WINDOW_SECONDS
T0 = 1_800_000_000.0  # a fixed clock: 2027-01-15 08:00 UTC


def _limits(tenant, *, authenticated: int | None = None, anonymous: int | None = None) -> None:
    """Set the pull limits, and forget the cached tenant (the registry sees a change within access.CACHE_SECONDS)."""
    tenant_limits_set(
        tenant=tenant, limits=TenantLimits(pulls_per_window_authenticated=authenticated, pulls_per_window_anonymous=anonymous)
    )
    access.caches_clear()


@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock, stopped at T0; `clock.now = ...` moves it."""

    class Clock:
        now = T0

    monkeypatch.setattr(pull_limits, "_now", lambda: Clock.now)
    return Clock


@pytest.fixture
def image(reg):
    digest, _ = reg.push_image("app", "v1", [b"layer-one"])
    return digest


def _remaining(response) -> int:
    return int(response["RateLimit-Remaining"].split(";")[0])


def _key_count(redis_client, pattern: str = "*") -> int:
    return len(list(redis_client.scan_iter(match=KEY_PREFIX + pattern)))


# -- the window script, at its edges -----------------------------------------------------------------


def test_the_window_counts_each_pull_for_exactly_its_length(db):
    key, ms = KEY_PREFIX + "script:edges", int(T0 * 1000)
    assert pull_window_take(key=key, limit=2, counted=True, now_ms=ms).count == 1
    second = pull_window_take(key=key, limit=2, counted=True, now_ms=ms + 1000)
    assert (second.allowed, second.count, second.frees_at_ms) == (True, 2, ms + W * 1000)
    refused = pull_window_take(key=key, limit=2, counted=True, now_ms=ms + W * 1000 - 1)
    assert (refused.allowed, refused.count, refused.frees_at_ms) == (False, 2, ms + W * 1000)
    # At t + window the first pull has left: one more is let in, and the next to leave is the second.
    slid = pull_window_take(key=key, limit=2, counted=True, now_ms=ms + W * 1000)
    assert (slid.allowed, slid.count, slid.frees_at_ms) == (True, 2, ms + 1000 + W * 1000)
    assert not pull_window_take(key=key, limit=2, counted=True, now_ms=ms + W * 1000 + 999).allowed
    assert pull_window_take(key=key, limit=2, counted=True, now_ms=ms + W * 1000 + 1000).allowed


def test_reading_the_window_counts_nothing_and_a_refused_pull_is_not_logged(db, redis_client):
    key, ms = KEY_PREFIX + "script:read", int(T0 * 1000)
    empty = pull_window_take(key=key, limit=1, counted=False, now_ms=ms)
    assert (empty.allowed, empty.count, empty.frees_at_ms) == (True, 0, -1)
    assert not redis_client.exists(key)
    pull_window_take(key=key, limit=1, counted=True, now_ms=ms)
    for offset in range(1, 50):
        assert not pull_window_take(key=key, limit=1, counted=True, now_ms=ms + offset).allowed
    assert redis_client.zcard(key) == 1
    assert pull_window_take(key=key, limit=1, counted=False, now_ms=ms + 5).count == 1
    assert 0 < redis_client.pttl(key) <= W * 1000  # the log expires a window after its newest pull


def test_a_lowered_limit_waits_until_enough_pulls_have_left(db):
    key, ms = KEY_PREFIX + "script:lowered", int(T0 * 1000)
    for i in range(5):
        pull_window_take(key=key, limit=5, counted=True, now_ms=ms + i * 1000)
    refused = pull_window_take(key=key, limit=2, counted=True, now_ms=ms + 10_000)
    # 5 count, 2 are allowed: one more gets in once the 4th oldest (index 3) has left.
    assert (refused.allowed, refused.count, refused.frees_at_ms) == (False, 5, ms + 3000 + W * 1000)
    zero = pull_window_take(key=KEY_PREFIX + "script:zero", limit=0, counted=True, now_ms=ms)
    assert (zero.allowed, zero.count, zero.frees_at_ms) == (False, 0, -1)


# -- what counts, and the headers ----------------------------------------------------------------------


def test_every_manifest_get_carries_the_headers_and_spends_one(reg, tenant, image, clock):
    _limits(tenant, authenticated=3, anonymous=1)
    seen = []
    for _ in range(3):
        r = reg.get("/v2/acme/app/manifests/v1")
        assert r.status_code == 200 and r["Docker-Content-Digest"] == image
        seen.append(r["RateLimit-Remaining"])
    assert seen == ["2;w=21600", "1;w=21600", "0;w=21600"]
    assert r["RateLimit-Limit"] == "3;w=21600"
    assert r["RateLimit-Reset"] == str(W)  # the first pull leaves the window in 6 h
    assert r["RateLimit-Policy"] == '3;w=21600;comment="authenticated"'
    assert r["Docker-RateLimit-Source"] == "acme"


def test_over_the_limit_is_429_toomanyrequests_with_retry_after_and_a_message_to_act_on(
    reg, tenant, image, clock, event_stream, redis_client
):
    _limits(tenant, authenticated=2)
    reg.get("/v2/acme/app/manifests/v1")
    clock.now = T0 + 600
    assert reg.get(f"/v2/acme/app/manifests/{image}").status_code == 200
    clock.now = T0 + 3600
    r = reg.get("/v2/acme/app/manifests/v1")
    assert r.status_code == 429
    error = r.json()["errors"][0]
    assert error["code"] == "TOOMANYREQUESTS"
    assert r["Retry-After"] == r["RateLimit-Reset"] == str(W - 3600)
    assert r["RateLimit-Remaining"] == "0;w=21600" and r["RateLimit-Limit"] == "2;w=21600"
    assert error["message"] == (
        "pull rate limit reached: acme has used its 2 pulls per 6 hours; the next pull is allowed in 5 h 0 min"
        f" (at 2027-01-15 14:00 UTC). Raise the limit: {settings.EXTERNAL_URL}/orgs/acme/billing/"
    )
    assert error["detail"] == {"limit": 2, "window_seconds": W, "retry_after": W - 3600, "source": "acme"}
    assert "\n" not in error["message"]
    # The refused GET is no pull: the meter sees the two served ones only.
    queued = [json.loads(raw) for raw in redis_client.lrange(events.QUEUE_KEY, 0, -1)]
    assert [e["ref"] for e in queued if e["k"] == "manifest" and e["dir"] == "pull"] == ["v1", image]
    clock.now = T0 + W
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 200  # the window slid past the first pull


def test_head_and_blobs_are_free_and_head_shows_the_standing(reg, tenant, image, clock):
    _limits(tenant, authenticated=1)
    for _ in range(3):
        r = reg.head("/v2/acme/app/manifests/v1")
        assert r.status_code == 200 and r["RateLimit-Remaining"] == "1;w=21600" and r["RateLimit-Reset"] == "0"
    config = sha(b'{"architecture":"amd64","os":"linux"}')
    for _ in range(3):
        assert reg.get(f"/v2/acme/app/blobs/{config}").status_code == 200
        assert reg.head(f"/v2/acme/app/blobs/{config}").status_code == 200
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 200
    refused = reg.get("/v2/acme/app/manifests/v1")
    assert refused.status_code == 429
    head = reg.head("/v2/acme/app/manifests/v1")  # never refused: docker reads the count this way
    assert head.status_code == 200 and head["RateLimit-Remaining"] == "0;w=21600" and head["RateLimit-Reset"] == str(W)


def test_a_multi_arch_pull_counts_each_platform_manifest_not_the_index(reg, tenant, clock):
    amd, amd_bytes = reg.push_image("multi", "amd64", [b"amd"])
    arm, arm_bytes = reg.push_image("multi", "arm64", [b"arm"], config=b'{"architecture":"arm64","os":"linux"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(b), "platform": p}
            for d, b, p in (
                (amd, amd_bytes, {"architecture": "amd64", "os": "linux"}),
                (arm, arm_bytes, {"architecture": "arm64", "os": "linux"}),
            )
        ],
    }
    assert reg.push_manifest("multi", "latest", index).status_code == 201
    _limits(tenant, authenticated=2)
    for _ in range(3):
        r = reg.get("/v2/acme/multi/manifests/latest")
        assert r.status_code == 200 and r["RateLimit-Remaining"] == "2;w=21600"
    assert _remaining(reg.get(f"/v2/acme/multi/manifests/{amd}")) == 1
    assert _remaining(reg.get(f"/v2/acme/multi/manifests/{arm}")) == 0
    assert reg.get(f"/v2/acme/multi/manifests/{amd}").status_code == 429
    assert reg.get("/v2/acme/multi/manifests/latest").status_code == 200  # the index is still served


# -- whose budget ------------------------------------------------------------------------------------


def test_every_credential_of_the_tenant_spends_the_tenant_budget(reg, tenant, image, make_reg, clock):
    _limits(tenant, authenticated=5, anonymous=100)
    robot = robot_create(tenant=tenant, name="ci", scopes=["pull"])
    _, doc = token_for(Client(), basic("owner", make_token(tenant.memberships.get().user)), "repository:acme/app:pull")
    pullers = [reg, make_reg("reader"), Reg(Client(), basic(robot.username, robot.secret)), Reg(Client(), bearer(doc["token"]))]
    for expected, puller in zip([4, 3, 2, 1], pullers, strict=True):
        r = puller.get("/v2/acme/app/manifests/v1")
        assert (r.status_code, _remaining(r), r["Docker-RateLimit-Source"]) == (200, expected, "acme")


def test_anonymous_pulls_of_public_repositories_count_per_address_and_per_ipv6_64(reg, tenant, image, anon, clock, make_reg):
    repository_visibility_set(tenant=tenant, name="app", visibility="public")
    _limits(tenant, authenticated=100, anonymous=2)
    url = "/v2/acme/app/manifests/v1"
    assert [_remaining(anon.get(url, REMOTE_ADDR="192.0.2.10")) for _ in range(2)] == [1, 0]
    refused = anon.get(url, REMOTE_ADDR="192.0.2.10")
    assert refused.status_code == 429 and refused["Docker-RateLimit-Source"] == "192.0.2.10"
    message = refused.json()["errors"][0]["message"]
    assert "2 anonymous pulls per 6 hours from 192.0.2.10" in message and "docker login" in message
    assert message.endswith(f"{settings.EXTERNAL_URL}/orgs/acme/billing/")
    assert _remaining(anon.get(url, REMOTE_ADDR="192.0.2.11")) == 1  # another address, another budget
    # One IPv6 /64 is one client; the next /64 is another.
    assert _remaining(anon.get(url, REMOTE_ADDR="2001:db8:1:2::1")) == 1
    r = anon.get(url, REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert _remaining(r) == 0 and r["Docker-RateLimit-Source"] == "2001:db8:1:2::/64"
    assert _remaining(anon.get(url, REMOTE_ADDR="2001:db8:1:3::1")) == 1
    # Somebody signed in but not of this tenant pulls its public repository as their address does.
    outsider_tenant = make_tenant("other", owner=UserFactory(username="stranger"))
    stranger = Reg(Client(), basic("stranger", make_token(outsider_tenant.memberships.get().user)))
    assert stranger.get(url, REMOTE_ADDR="192.0.2.11").status_code == 200
    assert stranger.get(url, REMOTE_ADDR="192.0.2.11").status_code == 429
    # The tenant's own members are not affected by any address's budget.
    assert reg.get(url, REMOTE_ADDR="192.0.2.10").status_code == 200


def test_one_tenants_pulls_do_not_spend_anothers(reg, tenant, image, clock):
    owner = UserFactory(username="bob")
    other = make_tenant("beta", owner=owner)
    beta = Reg(Client(), basic("bob", make_token(owner)), prefix="/v2/beta")
    beta.push_image("app", "v1", [b"beta-layer"])
    _limits(tenant, authenticated=1)
    _limits(other, authenticated=1)
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 200
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 429
    r = beta.get("/v2/beta/app/manifests/v1")
    assert r.status_code == 200 and r["Docker-RateLimit-Source"] == "beta"


def test_unlimited_tenants_get_no_headers_and_cost_no_redis_call(reg, tenant, image, anon, monkeypatch):
    repository_visibility_set(tenant=tenant, name="app", visibility="public")
    calls = []
    monkeypatch.setattr(pull_limits, "_redis", lambda: calls.append(1))
    _limits(tenant, authenticated=None, anonymous=5)  # members unlimited, strangers limited
    for client in (reg, reg):
        r = client.get("/v2/acme/app/manifests/v1")
        assert r.status_code == 200 and "RateLimit-Limit" not in r and "Docker-RateLimit-Source" not in r
    _limits(tenant)  # nothing limited at all
    for method in (anon.get, anon.head, reg.get, reg.head):
        r = method("/v2/acme/app/manifests/v1")
        assert r.status_code == 200 and "RateLimit-Remaining" not in r
    assert calls == []


def test_refused_requests_spend_nothing(reg, tenant, image, anon, clock, redis_client, make_reg):
    _limits(tenant, authenticated=1, anonymous=1)
    assert anon.get("/v2/acme/app/manifests/v1").status_code == 401  # a private repository
    assert reg.get("/v2/acme/app/manifests/nope").status_code == 404
    assert reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT="application/vnd.oci.image.index.v1+json").status_code == 404
    outsider = Reg(Client(), basic("owner", "wrong"))
    assert outsider.get("/v2/acme/app/manifests/v1").status_code == 401
    assert make_reg(None).get("/v2/acme/app/manifests/v1").status_code in (401, 403)
    assert _key_count(redis_client) == 0
    assert _remaining(reg.get("/v2/acme/app/manifests/v1")) == 0


def test_redis_down_lets_pulls_through_without_headers_and_says_so(reg, tenant, image, settings, caplog, monkeypatch):
    _limits(tenant, authenticated=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(pull_limits._fail_open, "_last", -1e9)
    with caplog.at_level(logging.WARNING, logger="gateway.registry.pull_limits"):
        for _ in range(3):
            r = reg.get("/v2/acme/app/manifests/v1")
            assert r.status_code == 200 and "RateLimit-Limit" not in r
    assert caplog.text.count("pull rate limiting unavailable") == 1


def test_the_limit_is_read_from_the_tenant_the_registry_already_holds(reg, tenant, image, clock, django_assert_max_num_queries):
    _limits(tenant, authenticated=10)
    reg.get("/v2/acme/app/manifests/v1")
    with django_assert_max_num_queries(3):  # the repository, the manifest, the tag: no query for the limit
        assert _remaining(reg.get("/v2/acme/app/manifests/v1")) == 8
    assert json.loads(reg.get("/v2/acme/app/manifests/v1").content)["schemaVersion"] == 2


def test_bearer_tokens_on_a_public_repository_spend_the_budget_of_who_they_name(reg, tenant, image, clock, make_reg):
    repository_visibility_set(tenant=tenant, name="app", visibility="public")
    _limits(tenant, authenticated=10, anonymous=10)
    robot = robot_create(tenant=tenant, name="ci", scopes=["pull"])
    make_tenant("gamma", owner=UserFactory(username="gus"))
    member = make_token(make_member(tenant, "reader", username="rita"))
    scope = "repository:acme/app:pull"

    def pull_as(auth: str | None, ip: str):
        _, doc = token_for(Client(), auth, scope)
        return Reg(Client(), bearer(doc["token"])).get("/v2/acme/app/manifests/v1", REMOTE_ADDR=ip)

    for auth, source in (
        (basic("rita", member), "acme"),
        (basic(robot.username, robot.secret), "acme"),
        (basic("gus", make_token(User.objects.get(username="gus"))), "198.51.100.7"),
        (None, "198.51.100.7"),
    ):
        r = pull_as(auth, "198.51.100.7")
        assert (r.status_code, r["Docker-RateLimit-Source"]) == (200, source)
    assert _remaining(pull_as(None, "198.51.100.7")) == 7  # the stranger's and the anonymous pulls share the address
    assert _remaining(pull_as(basic("rita", member), "198.51.100.8")) == 7


def test_a_plan_without_anonymous_pulls_says_so_and_members_still_pull(reg, tenant, image, anon, clock):
    repository_visibility_set(tenant=tenant, name="app", visibility="public")
    _limits(tenant, authenticated=5, anonymous=0)
    r = anon.get("/v2/acme/app/manifests/v1")
    assert r.status_code == 429 and r["Retry-After"] == str(W) and r["RateLimit-Remaining"] == "0;w=21600"
    message = r.json()["errors"][0]["message"]
    assert message.startswith("pull rate limit: acme's plan allows no anonymous pulls; log in (docker login)")
    assert anon.head("/v2/acme/app/manifests/v1").status_code == 200
    assert _remaining(reg.get("/v2/acme/app/manifests/v1")) == 4


def test_the_standing_read_counts_nothing_and_matches_the_headers(reg, tenant, image, clock, redis_client, settings, monkeypatch):
    from accounts.models import Tenant

    _limits(tenant, authenticated=None)
    assert pull_limits.pull_standing_get(tenant=Tenant.objects.get(pk=tenant.pk)) is None  # unlimited: nothing counted
    _limits(tenant, authenticated=10)
    assert _remaining(reg.get("/v2/acme/app/manifests/v1")) == 9
    fresh = Tenant.objects.get(pk=tenant.pk)
    for _ in range(3):  # reading spends nothing
        standing = pull_limits.pull_standing_get(tenant=fresh)
        assert standing is not None and (standing.limit, standing.remaining, standing.source) == (10, 9, "acme")
    assert _remaining(reg.get("/v2/acme/app/manifests/v1")) == 8
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: fail open
    monkeypatch.setattr(pull_limits._fail_open, "_last", -1e9)
    assert pull_limits.pull_standing_get(tenant=fresh) is None
