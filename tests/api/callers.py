"""The callers of an access matrix, by name: fixtures of tests/api/conftest.py, or made here for `acme`."""

from __future__ import annotations

from accounts.models import Membership
from accounts.services import robot_create
from tests.api.conftest import Api, token
from tests.factories import UserFactory, make_member, make_tenant

FULL = ("api:read", "api:write")


def caller(request, acme, who: str) -> Api:
    """`who` as an API client: anonymous, a role of acme (reader, writer, admin, owner), its robot, another tenant's owner, or a fixture."""
    if who == "anonymous":
        return Api()
    if who in (Membership.Role.READER, Membership.Role.WRITER, Membership.Role.ADMIN):
        return Api(token(make_member(acme, who, username=f"u-{who}"), FULL))
    if who == "owner":
        return Api(token(acme.memberships.get(role=Membership.Role.OWNER).user, FULL))
    if who == "robot":
        return Api(robot_create(tenant=acme, name="r", scopes=list(FULL)).secret)
    if who == "other_owner":
        return Api(token(make_tenant("umbrella", owner=UserFactory(username="uma")).memberships.get().user, FULL))
    return request.getfixturevalue(who)
