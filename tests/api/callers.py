"""Callers of a tenant-wide read for access-matrix tests, by name: the conftest fixtures and a few more."""

from __future__ import annotations

from accounts.models import Membership
from accounts.services import robot_create
from tests.api.conftest import Api, token
from tests.factories import make_member

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


def caller(request, tenant, who: str, scopes=("api:read",)) -> Api:
    """`who`: anonymous, robot (of `tenant`), narrowed (its owner's token limited to `team/*`), a role, or a conftest fixture."""
    if who == "anonymous":
        return Api()
    if who == "robot":
        return Api(robot_create(tenant=tenant, name="reader-robot", scopes=list(scopes)).secret)
    owner = tenant.memberships.get(role=Membership.Role.OWNER).user
    if who == "narrowed":
        return Api(token(owner, scopes, repositories=["team/*"]))
    if who == Membership.Role.OWNER:
        return Api(token(owner, scopes))
    if who in Membership.Role.values:
        return Api(token(make_member(tenant, who, username=f"m-{who}"), scopes))
    return request.getfixturevalue(who)
