"""A live Wharf (gunicorn, real HTTP) for the API tests that drive it from outside: schemathesis, the generated client.

`live_api` is the session's one server on the test database (`wharf` in tests/conftest.py, the
same the e2e tests use); `live_tenant` seeds a fresh tenant (unique slug: the server caches tenants
briefly) whose owner holds an `api:read api:write` token, with one of each thing a path can name:
a robot, a second member, a repository with a tag.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import requests
from django.test import Client

from accounts.models import Membership
from accounts.services import access_token_issue, robot_create
from tests.e2e.wharf import WharfServer
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic

API_SCOPES = ["api:read", "api:write"]


@dataclass
class LiveTenant:
    """A seeded tenant on the live server, and the owner's API token (`headers`)."""

    slug: str
    owner: str
    token: str
    token_id: int
    robot: str
    member: str
    repository: str
    tag: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def live_api(wharf: WharfServer) -> WharfServer:
    """The session's live Wharf (tests/conftest.py `wharf`, the one the e2e tests use)."""
    return wharf


def seed_tenant(*, repository: str = "team/app", tag: str = "v1") -> LiveTenant:
    """A tenant with an owner (API token), a robot, a reader and `repository:tag`, committed for the live server."""
    slug = "t" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    issued = access_token_issue(user=owner, name="schemathesis", scopes=API_SCOPES)
    robot = robot_create(tenant=tenant, name="ci", scopes=["pull"], actor="seed").robot
    member = make_member(tenant, Membership.Role.READER, username="r" + slug)
    Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}").push_image(repository, tag, [slug.encode()])
    return LiveTenant(
        slug=slug,
        owner=owner.username,
        token=issued.secret,
        token_id=issued.token.pk,
        robot=robot.name,
        member=member.username,
        repository=repository,
        tag=tag,
    )


@pytest.fixture
def live_tenant(transactional_db) -> LiveTenant:
    return seed_tenant()


def http() -> requests.Session:
    """A requests session that ignores proxy settings from the environment (everything here is 127.0.0.1)."""
    session = requests.Session()
    session.trust_env = False
    return session
