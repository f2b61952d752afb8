"""The callers of an access matrix, by name: fixtures of tests/api/conftest.py, or made here for a tenant."""

from __future__ import annotations

from accounts.models import Membership
from accounts.services import robot_create
from tests.api.conftest import Api, token
from tests.factories import UserFactory, make_member, make_tenant

FULL = ("api:read", "api:write")

# Who a tenant-wide read denies, and with what status.
DENIED = [
    ("anonymous", 401),
    ("revoked", 401),
    ("expired", 401),
    ("registry_only", 403),
    ("robot", 403),
    ("narrowed", 403),
    ("outsider", 404),
    ("staff", 404),
]


def caller(request, tenant, who: str, scopes=FULL) -> Api:
    """`who` as an API client with `scopes`: anonymous, a role of `tenant` (reader, writer, admin, owner), its robot,
    narrowed (the owner's token limited to `team/*`), other_owner (another tenant's owner), or a conftest fixture."""
    if who == "anonymous":
        return Api()
    if who == "robot":
        return Api(robot_create(tenant=tenant, name="r", scopes=list(scopes)).secret)
    if who == "other_owner":
        return Api(token(make_tenant("umbrella", owner=UserFactory(username="uma")).memberships.get().user, scopes))
    owner = tenant.memberships.get(role=Membership.Role.OWNER).user
    if who == "narrowed":
        return Api(token(owner, scopes, repositories=["team/*"]))
    if who == Membership.Role.OWNER:
        return Api(token(owner, scopes))
    if who in Membership.Role.values:
        return Api(token(make_member(tenant, who, username=f"u-{who}"), scopes))
    return request.getfixturevalue(who)
