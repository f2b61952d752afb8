"""Robot accounts: creation, the `<tenant>+<robot>` login, limits, expiry and revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, RobotAccount, Tenant
from accounts.secrets import hash_secret
from accounts.selectors import credentials_check, robot_list
from accounts.services import robot_create, robot_revoke
from gateway.core.errors import Conflict, NotFound, ValidationError
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    return make_tenant("acme")


def test_create_returns_the_secret_once_and_stores_its_hash(acme):
    issued = robot_create(tenant=acme, name="ci", scopes=["push", "pull", "pull"], repositories=["team/*"], actor="alice")
    assert issued.username == "acme+ci" == issued.robot.username
    assert issued.secret.startswith("wharf_rbt_") and len(issued.secret) > 40
    row = RobotAccount.objects.get(pk=issued.robot.pk)
    assert row.secret_hash == hash_secret(issued.secret)
    assert (row.tenant_id, row.name, row.scopes, row.repositories, row.expires_at, row.revoked_at) == (
        acme.pk,
        "ci",
        ["pull", "push"],
        ["team/*"],
        None,
        None,
    )
    assert issued.secret not in {row.secret_hash, row.name}
    other = robot_create(tenant=acme, name="deploy", scopes=["pull"])
    assert other.secret != issued.secret
    event = AuditEvent.objects.get(action="robot.create", target="acme+ci")
    assert (event.tenant_id, event.actor, event.detail["scopes"]) == (acme.pk, "alice", ["pull", "push"])
    assert [r.name for r in robot_list(tenant=acme)] == ["ci", "deploy"]


def test_credentials_check_names_the_robot_with_its_limits(acme):
    issued = robot_create(tenant=acme, name="ci", scopes=["pull"], repositories=["team/*", "base"])
    principal = credentials_check(username="acme+ci", secret=issued.secret)
    assert principal is not None
    assert (principal.kind, principal.name, principal.user, principal.tenant_id) == ("robot", "acme+ci", None, acme.pk)
    assert principal.robot.pk == issued.robot.pk
    assert principal.scopes == ("pull",) and principal.repositories == ("team/*", "base")
    assert principal.repository_allowed("team/web") and principal.repository_allowed("base")
    assert not principal.repository_allowed("other")
    assert RobotAccount.objects.get(pk=issued.robot.pk).last_used_at is not None


def test_the_username_must_match_exactly(acme):
    beta = make_tenant("beta")
    issued = robot_create(tenant=acme, name="ci", scopes=["pull"])
    robot_create(tenant=beta, name="ci", scopes=["pull"])
    for username in ["beta+ci", "acme+cd", "acme", "ci", "ACME+ci", "acme+ci ", "acme+ci+x", "+ci"]:
        assert credentials_check(username=username, secret=issued.secret) is None, username
    assert credentials_check(username="acme+ci", secret=issued.secret + "x") is None


def test_a_user_named_like_a_robot_still_logs_in_with_a_password(acme):
    UserFactory(username="acme+ci")  # usernames may hold "+"; the secret's prefix decides what it is
    issued = robot_create(tenant=acme, name="ci", scopes=["pull"])
    assert credentials_check(username="acme+ci", secret="pw-secret-123").kind == "user"
    assert credentials_check(username="acme+ci", secret=issued.secret).kind == "robot"


def test_revoked_robots_stop_working_and_revoke_is_idempotent(acme):
    issued = robot_create(tenant=acme, name="ci", scopes=["pull", "push"])
    robot_revoke(tenant=acme, name="ci", actor="alice")
    robot_revoke(tenant=acme, name="ci", actor="alice")
    assert credentials_check(username="acme+ci", secret=issued.secret) is None
    assert RobotAccount.objects.get(pk=issued.robot.pk).revoked_at is not None
    assert list(AuditEvent.objects.filter(action="robot.revoke").values_list("actor", "target")) == [("alice", "acme+ci")]
    with pytest.raises(NotFound, match="no robot named 'cd'"):
        robot_revoke(tenant=acme, name="cd")
    with pytest.raises(NotFound):
        robot_revoke(tenant=make_tenant("beta"), name="ci")  # another tenant's robot is not found
    with pytest.raises(Conflict, match="revoked robots keep their name"):
        robot_create(tenant=acme, name="ci", scopes=["pull"])


def test_expired_robots_do_not_authenticate_and_robots_of_suspended_tenants_do(acme):
    issued = robot_create(tenant=acme, name="ci", scopes=["pull"], expires_in_days=1)
    assert issued.robot.expires_at > timezone.now() + timedelta(hours=23)
    assert credentials_check(username="acme+ci", secret=issued.secret) is not None
    RobotAccount.objects.filter(pk=issued.robot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert credentials_check(username="acme+ci", secret=issued.secret) is None
    other = robot_create(tenant=acme, name="cd", scopes=["pull"])
    Tenant.objects.filter(pk=acme.pk).update(status=Tenant.Status.SUSPENDED)
    # A suspended tenant's robots keep pulling; the registry refuses their pushes (docs/decisions/0023).
    assert credentials_check(username="acme+cd", secret=other.secret) is not None


def test_names_are_unique_per_tenant_only(acme):
    robot_create(tenant=acme, name="ci", scopes=["pull"])
    with pytest.raises(Conflict, match="already has a robot named 'ci'"):
        robot_create(tenant=acme, name="ci", scopes=["push"])
    robot_create(tenant=make_tenant("beta"), name="ci", scopes=["pull"])
    assert RobotAccount.objects.count() == 2


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"name": ""}, "required"),
        ({"name": "CI"}, "lower-case"),
        ({"name": "-ci"}, "starting with a letter or digit"),
        ({"name": "_ci"}, "starting"),
        ({"name": "c" * 64}, "1 to 63"),
        ({"name": "a+b"}, "lower-case"),
        ({"name": "a.b"}, "lower-case"),
        ({"name": "ci", "scopes": []}, "scopes"),
        ({"name": "ci", "scopes": ["pull", "admin"]}, "admin"),
        ({"name": "ci", "scopes": "pull"}, "scopes"),
        ({"name": "ci", "repositories": ["Team/*"]}, "lower-case"),
        ({"name": "ci", "expires_in_days": 0}, "1 to 3650"),
        ({"name": "ci", "expires_in_days": 3651}, "1 to 3650"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(acme, kwargs, msg):
    args = {"scopes": ["pull"], **kwargs}
    with pytest.raises(ValidationError, match=msg):
        robot_create(tenant=acme, **args)
    assert not RobotAccount.objects.exists()
    assert not AuditEvent.objects.filter(action="robot.create").exists()


@pytest.mark.parametrize("name", ["a", "ci", "0day", "deploy_prod-2", "x" * 63])
def test_good_names(acme, name):
    assert robot_create(tenant=acme, name=name, scopes=["pull"]).username == f"acme+{name}"


def test_last_use_is_recorded_at_most_once_a_minute(acme):
    issued = robot_create(tenant=acme, name="ci", scopes=["pull"])
    credentials_check(username="acme+ci", secret=issued.secret)
    first = RobotAccount.objects.get(pk=issued.robot.pk).last_used_at
    credentials_check(username="acme+ci", secret=issued.secret)
    assert RobotAccount.objects.get(pk=issued.robot.pk).last_used_at == first
    RobotAccount.objects.filter(pk=issued.robot.pk).update(last_used_at=first - timedelta(minutes=2))
    credentials_check(username="acme+ci", secret=issued.secret)
    assert RobotAccount.objects.get(pk=issued.robot.pk).last_used_at > first
