"""The repository and tag list pages as rows (issue 10's performance item, docs/decisions/0037).

The lists are built from `.values()` rows with a hand-written representation, and the caller's
token, user and membership come from one query: these tests hold them to what the serializers
and the ORM lookups gave, to a fixed number of queries per page, and to revocation counting on
the very next request.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework import serializers

from accounts.bearer import access_token_with_membership
from accounts.models import Membership, PersonalAccessToken, User
from accounts.secrets import hash_secret
from accounts.services import access_token_issue, access_token_revoke
from gateway.api.base import iso_datetime
from gateway.api.views.repositories import RepositoryOutputSerializer, TagOutputSerializer
from gateway.registry import selectors
from gateway.registry.models import Repository, Tag
from gateway.registry.services.repositories import repository_ensure
from tests.api.conftest import Api, assert_problem
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic

BASE = "/api/v1/tenants/acme/repositories"


@pytest.fixture
def pushed(owner, acme):
    """team/app with v1, v2 (one pulled at a whole second, one with microseconds, one immutable), an empty repository."""
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("team/app", "v1", [b"layer-one"])
    reg.push_image("team/app", "v2", [b"layer-two"])
    reg.push_image("other/app", "latest", [b"layer-three"])
    repository_ensure(tenant=acme, name="empty")
    Tag.objects.filter(name="v1").update(last_pulled_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC), immutable=True)
    Tag.objects.filter(name="v2").update(last_pulled_at=dt.datetime(2026, 3, 1, 9, 30, 0, 123000, tzinfo=dt.UTC))
    Repository.objects.filter(name="empty").update(description="nothing pushed yet")
    return reg


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["name", "-last_pushed_at"])
def test_repository_items_are_what_the_serializer_writes(acme, pushed, api_read, sort):
    body = api_read.get(BASE, sort=sort).json()
    ordering = {"name": ("name", "pk"), "-last_pushed_at": ("-last_pushed_at", "-pk")}[sort]
    expected = RepositoryOutputSerializer(selectors.repository_list(tenant=acme).order_by(*ordering), many=True).data
    assert body["results"] == expected
    assert [list(item) for item in body["results"]] == [list(item) for item in expected]  # same keys in the same order
    assert {r["name"]: r["last_pushed_at"] for r in body["results"]}["empty"] is None


@pytest.mark.django_db
def test_tag_items_are_what_the_serializer_writes(acme, pushed, api_read):
    body = api_read.get(f"{BASE}/team/app/-/tags").json()
    repository = Repository.objects.get(name="team/app")
    expected = TagOutputSerializer(
        selectors.tag_list_detailed(tenant=acme, repository=repository).order_by("name"), many=True
    ).data
    assert body["results"] == expected and [list(t) for t in body["results"]] == [list(t) for t in expected]
    assert [t["last_pulled_at"] for t in body["results"]] == ["2026-03-01T09:30:00Z", "2026-03-01T09:30:00.123000Z"]
    assert [t["immutable"] for t in body["results"]] == [True, False] and isinstance(body["results"][0]["size"], int)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize("microsecond", [0, 1, 500000])
def test_iso_datetime_is_drfs_datetime_field(zone, microsecond):
    value = dt.datetime(2026, 7, 1, 23, 59, 59, microsecond, tzinfo=dt.UTC)
    with timezone.override(zone):
        assert iso_datetime(value, timezone.get_current_timezone()) == serializers.DateTimeField().to_representation(value)
    assert iso_datetime(None, dt.UTC) is None


@pytest.mark.django_db
def test_a_page_is_one_query_for_the_caller_and_one_for_the_rows(
    acme, pushed, api_read, django_assert_num_queries, django_assert_max_num_queries
):
    for i in range(60):
        repository_ensure(tenant=acme, name=f"many/r{i:02d}")
    api_read.get(BASE)  # the token's last use is recorded at most once a minute: not on the pages below
    for limit in (5, 50):
        with django_assert_num_queries(2):  # token + user + membership + tenant; the page
            first = api_read.get(BASE, limit=limit)
        with django_assert_num_queries(2):
            assert api_read.client.get(first.json()["next"], **api_read.headers).status_code == 200
        with django_assert_num_queries(3):  # and the repository
            assert api_read.get(f"{BASE}/team/app/-/tags", limit=limit).status_code == 200
    with django_assert_max_num_queries(2):
        assert api_read.get(BASE, prefix="many/", sort="-last_pushed_at").status_code == 200


@pytest.mark.django_db
def test_revocation_and_membership_changes_count_on_the_next_request(acme, pushed):
    rita = make_member(acme, Membership.Role.READER, username="rita")
    issued = access_token_issue(user=rita, name="t", scopes=["api:read"])
    api = Api(issued.secret)
    assert api.get(BASE).status_code == 200
    Membership.objects.filter(user=rita).delete()
    assert_problem(api.get(BASE), 404)  # no longer a member: the tenant is not hers to see
    Membership.objects.create(tenant=acme, user=rita, role=Membership.Role.READER)
    assert api.get(BASE).status_code == 200
    User.objects.filter(pk=rita.pk).update(is_active=False)
    assert_problem(api.get(BASE), 401)
    User.objects.filter(pk=rita.pk).update(is_active=True)
    assert api.get(BASE).status_code == 200
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert_problem(api.get(BASE), 401)
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=None)
    assert api.get(BASE).status_code == 200
    access_token_revoke(user=rita, token_id=issued.token.pk)
    assert_problem(api.get(BASE), 401)


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.mark.django_db
def test_the_one_query_loads_what_the_orm_loads(acme, owner, other_tenant):
    issued = access_token_issue(user=owner, name="t", scopes=["api:read", "pull"], repositories=["team/*"])
    found = access_token_with_membership(token_hash=hash_secret(issued.secret), tenant_slug="acme", now=timezone.now())
    assert found is not None
    token, membership = found
    orm = PersonalAccessToken.objects.select_related("user").get(pk=issued.token.pk)
    assert _fields(token) == _fields(orm) and sorted(token.scopes) == ["api:read", "pull"] and token.repositories == ["team/*"]
    assert _fields(token.user) == _fields(orm.user)
    expected = Membership.objects.select_related("tenant").get(tenant=acme, user=owner)
    assert membership is not None and membership[1] == expected.role and _fields(membership[0]) == _fields(expected.tenant)
    assert token._state.adding is False and token._state.db == "default"
    elsewhere = access_token_with_membership(token_hash=hash_secret(issued.secret), tenant_slug="globex", now=timezone.now())
    assert elsewhere is not None and elsewhere[1] is None  # authenticated, but no member of globex
    assert access_token_with_membership(token_hash="0" * 64, tenant_slug="acme", now=timezone.now()) is None


@pytest.mark.django_db
def test_the_rate_limit_window_expires(acme, api_read, settings, monkeypatch):
    import time

    from gateway.api import throttling
    from gateway.api.redis_store import api_redis

    window = settings.GATEWAY_API_RATE_WINDOW_SECONDS
    start = int(time.time() // window) * window
    monkeypatch.setattr(throttling, "_now", lambda: start + 0.5)  # both requests in one window, however slow the machine
    assert api_read.get(BASE).status_code == 200
    token_id = PersonalAccessToken.objects.get().pk
    key = f"{throttling.KEY_PREFIX}read:token:{token_id}:{start}"  # this caller's (other test runs may share the db)
    assert int(api_redis().get(key)) == 1
    assert 0 < api_redis().ttl(key) <= window + 1
    assert api_read.get(BASE)["RateLimit-Remaining"] == str(settings.GATEWAY_API_RATE_READ - 2)
