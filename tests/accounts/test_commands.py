"""The operator commands as manage.py runs them (call_command), with their exact output formats."""

import json

import pytest

from accounts.models import AuditEvent, Membership, PersonalAccessToken, RobotAccount, Tenant, User
from accounts.secrets import hash_secret
from tests.helpers import command

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_tenant_creates_owner_and_prints_json():
    r = command("create_tenant", "acme", "--owner", "alice", "--email", "a@example.com", "--password-stdin", input="s3cret-pw\n")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    tenant = Tenant.objects.get(slug="acme")
    alice = User.objects.get(username="alice")
    assert out == {
        "tenant": {"id": tenant.pk, "slug": "acme", "plan": None},
        "owner": {"id": alice.pk, "username": "alice", "created": True},
    }
    assert alice.check_password("s3cret-pw")
    assert Membership.objects.get(tenant=tenant, user=alice).role == "owner"

    r = command("create_tenant", "beta", "--owner", "alice")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["owner"]["created"] is False


@pytest.mark.parametrize("slug,msg", [("Bad_Slug", "DNS label"), ("admin", "reserved")])
def test_create_tenant_refuses_bad_slugs_and_creates_nothing(slug, msg):
    r = command("create_tenant", slug, "--owner", "bob")
    assert r.returncode != 0
    assert msg in r.stderr
    assert not Tenant.objects.exists()


def test_create_tenant_twice_is_a_clear_error():
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command("create_tenant", "acme", "--owner", "alice")
    assert r.returncode != 0 and "already exists" in r.stderr


def test_create_token_prints_the_secret_alone():
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command("create_token", "alice", "--name", "ci", "--scopes", "pull,push", "--expires-days", "30")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n" and secret.startswith("wharf_pat_")
    token = PersonalAccessToken.objects.get(token_hash=hash_secret(secret))
    assert token.name == "ci" and token.scopes == ["pull", "push"] and token.expires_at is not None


@pytest.mark.parametrize(
    "args,msg",
    [(["nobody"], "No user 'nobody'"), (["alice", "--scopes", "pull,fly"], "scopes"), (["alice", "--expires-days", "0"], "3650")],
)
def test_create_token_errors(args, msg):
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command("create_token", *args)
    assert r.returncode != 0 and msg in r.stderr
    assert not PersonalAccessToken.objects.exists()


def test_create_token_takes_repository_patterns():
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command("create_token", "alice", "--scopes", "pull", "--repos", "team/*,base", "--repos", "tools/*")
    assert r.returncode == 0, r.stderr
    token = PersonalAccessToken.objects.get(token_hash=hash_secret(r.stdout.strip()))
    assert token.repositories == ["team/*", "base", "tools/*"]
    r = command("create_token", "alice", "--repos", "Team/*")
    assert r.returncode != 0 and "lower-case" in r.stderr
    assert PersonalAccessToken.objects.count() == 1


def test_create_robot_prints_the_secret_alone_and_it_logs_in():
    from accounts.selectors import credentials_check

    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command(
        "create_robot",
        "acme",
        "ci",
        "--scopes",
        "pull,push",
        "--repos",
        "team/*",
        "--repos",
        "base,tools/*",
        "--expires-days",
        "7",
    )
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n" and secret.startswith("wharf_rbt_")
    robot = RobotAccount.objects.get(secret_hash=hash_secret(secret))
    assert (robot.tenant.slug, robot.name, robot.scopes, robot.repositories) == (
        "acme",
        "ci",
        ["pull", "push"],
        ["team/*", "base", "tools/*"],
    )
    assert robot.expires_at is not None
    principal = credentials_check(username="acme+ci", secret=secret)
    assert principal.kind == "robot" and principal.scopes == ("pull", "push")
    assert AuditEvent.objects.filter(action="robot.create", target="acme+ci", actor="system").count() == 1


@pytest.mark.parametrize(
    "args,msg",
    [
        (["nosuch", "ci", "--scopes", "pull"], "No tenant 'nosuch'"),
        (["acme", "CI", "--scopes", "pull"], "lower-case"),
        (["acme", "ci"], "--scopes"),
        (["acme", "ci", "--scopes", "pull,fly"], "fly"),
        (["acme", "ci", "--scopes", ""], "scopes"),
        (["acme", "ci", "--scopes", "pull", "--repos", "a b"], "lower-case"),
        (["acme", "ci", "--scopes", "pull", "--expires-days", "0"], "1 to 3650"),
        (["acme", "ci", "--scopes", "pull", "--expires-days", "soon"], "invalid int"),
    ],
)
def test_create_robot_errors_are_clear_and_create_nothing(args, msg):
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = command("create_robot", *args)
    assert r.returncode != 0 and msg in r.stderr
    assert r.stdout == ""
    assert not RobotAccount.objects.exists()


def test_create_robot_twice_is_a_clear_error():
    assert command("create_tenant", "acme", "--owner", "alice").returncode == 0
    assert command("create_robot", "acme", "ci", "--scopes", "pull").returncode == 0
    r = command("create_robot", "acme", "ci", "--scopes", "pull")
    assert r.returncode != 0 and "already has a robot named 'ci'" in r.stderr
    assert RobotAccount.objects.count() == 1


def test_token_key_commands(keys_dir):
    first = command("token_key_create")
    assert first.returncode == 0, first.stderr
    kid1 = first.stdout.strip()
    assert len(kid1) == 43 and "=" not in kid1  # base64url SHA-256, unpadded
    r = command("token_key_retire", kid1)
    assert r.returncode != 0 and "only signing key" in r.stderr
    kid2 = command("token_key_create").stdout.strip()
    listed = json.loads(command("token_key_list").stdout)
    assert [(k["kid"], k["signing"]) for k in listed] == [(kid1, False), (kid2, True)]
    assert all(k["file"].startswith(str(keys_dir)) and k["file"].endswith(".pem") for k in listed)
    r = command("token_key_retire", kid2)
    assert r.returncode == 0, r.stderr
    assert f"{kid1} signs now" in r.stderr
    assert [k["kid"] for k in json.loads(command("token_key_list").stdout)] == [kid1]
    r = command("token_key_retire", "no-such-kid")
    assert r.returncode != 0 and "No token signing key with kid 'no-such-kid'" in r.stderr


def test_revoke_sessions_revokes_refresh_tokens_and_bumps_the_epoch():
    from accounts.models import RefreshToken
    from accounts.principals import principal_for_password
    from accounts.sessions import refresh_token_check, refresh_token_issue

    assert command("create_tenant", "acme", "--owner", "alice", "--password-stdin", input="s3cret-pw\n").returncode == 0
    alice = User.objects.get(username="alice")
    secret = refresh_token_issue(principal=principal_for_password(alice), service="registry.test")
    r = command("revoke_sessions", "alice")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"user": "alice", "refresh_tokens_revoked": 1, "session_epoch": 1}
    assert refresh_token_check(secret=secret, service="registry.test") is None
    assert RefreshToken.objects.get().revoked_at is not None
    assert User.objects.get(username="alice").session_epoch == 1
    assert AuditEvent.objects.filter(action="sessions.revoke", target="alice").count() == 1
    r = command("revoke_sessions", "nobody")
    assert r.returncode != 0 and "No user 'nobody'" in r.stderr
