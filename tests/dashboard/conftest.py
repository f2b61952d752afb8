"""Dashboard test-client fixtures: one organisation (`acme`, the shared `tenant` fixture) and a signed-in client per caller.

`as_caller(name)` gives a Client signed in as one of CALLERS: each role of acme, a member of
another organisation (`other`), a staff user who is no member (`staff`); `anonymous` is not
signed in. `assert_denied(response, caller)` is what every page answers a caller it refuses:
login redirect for anonymous, 404 for everyone else (no existence leak).
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership
from tests.factories import UserFactory, make_member, make_tenant

ROLES = ("reader", "writer", "admin", "owner")
CALLERS = ("anonymous", *ROLES, "other", "staff")


@pytest.fixture
def users(tenant):
    """acme's owner (`owner`, from the tenant fixture), one member per other role, an outsider and a staff user."""
    from accounts.models import User

    made = {"owner": User.objects.get(username="owner")}
    for role in ("reader", "writer", "admin"):
        made[role] = make_member(tenant, role, username=f"acme-{role}")
    made["other"] = UserFactory(username="outsider")
    make_tenant("globex", owner=made["other"])
    made["staff"] = UserFactory(username="operator", is_staff=True)
    return made


@pytest.fixture
def as_caller(users):
    def make(name: str) -> Client:
        client = Client()
        if name != "anonymous":
            client.force_login(users[name], backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


def assert_denied(response, caller: str) -> None:
    if caller == "anonymous":
        assert response.status_code == 302, response.status_code
        assert response["Location"].startswith("/accounts/login/"), response["Location"]
    else:
        assert response.status_code == 404, (caller, response.status_code)


def allowed(least: str) -> tuple[str, ...]:
    """The callers a page open to `least` and above lets in."""
    order = [r.value for r in (Membership.Role.READER, Membership.Role.WRITER, Membership.Role.ADMIN, Membership.Role.OWNER)]
    return tuple(order[order.index(least) :])
