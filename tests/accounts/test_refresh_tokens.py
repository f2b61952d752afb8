"""Refresh tokens (OAuth2 offline access for `docker login`): issue, exchange, expiry, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import PersonalAccessToken, RefreshToken, RobotAccount
from accounts.secrets import hash_secret
from accounts.selectors import credentials_check
from accounts.services import access_token_issue, access_token_revoke, robot_create, robot_revoke
from accounts.sessions import refresh_token_check, refresh_token_issue, refresh_tokens_revoke
from gateway.core.errors import ValidationError
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db
SERVICE = "registry.example.test"


def password_login(username: str = "alice"):
    UserFactory(username=username)
    return credentials_check(username=username, secret="pw-secret-123")


def test_a_password_login_refresh_token_stands_for_the_user(settings):
    principal = password_login()
    secret = refresh_token_issue(principal=principal, service=SERVICE)
    assert secret.startswith("wharf_rft_") and len(secret) > 40
    row = RefreshToken.objects.get()
    assert row.secret_hash == hash_secret(secret) and secret not in {row.secret_hash, row.user_auth_hash}
    assert row.user == principal.user and row.robot is None and row.service == SERVICE
    days = (row.expires_at - timezone.now()).total_seconds() / 86400
    assert settings.GATEWAY_REFRESH_TOKEN_DAYS == 30 and 29.99 < days <= 30
    assert refresh_token_check(secret=secret, service=SERVICE) == principal
    assert RefreshToken.objects.get().last_used_at is not None


def test_lifetime_comes_from_settings(settings):
    settings.GATEWAY_REFRESH_TOKEN_DAYS = 2
    refresh_token_issue(principal=password_login(), service=SERVICE)
    assert timedelta(days=1, hours=23) < RefreshToken.objects.get().expires_at - timezone.now() <= timedelta(days=2)


def test_unknown_other_service_expired_and_revoked_tokens_are_refused():
    principal = password_login()
    secret = refresh_token_issue(principal=principal, service=SERVICE)
    for bad in ["", "wharf_rft_nope", secret + "x", "wharf_pat_" + secret[10:], secret.upper()]:
        assert refresh_token_check(secret=bad, service=SERVICE) is None
    assert refresh_token_check(secret=secret, service="other.example.test") is None
    RefreshToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refresh_token_check(secret=secret, service=SERVICE) is None
    fresh = refresh_token_issue(principal=principal, service=SERVICE)
    assert refresh_tokens_revoke(user=principal.user) == 1  # the expired one is not counted
    assert refresh_token_check(secret=fresh, service=SERVICE) is None
    assert refresh_tokens_revoke(user=principal.user) == 0


def test_deactivating_the_user_or_changing_the_password_ends_it():
    principal = password_login()
    secret = refresh_token_issue(principal=principal, service=SERVICE)
    user = principal.user
    user.is_active = False
    user.save()
    assert refresh_token_check(secret=secret, service=SERVICE) is None
    user.is_active = True
    user.save()
    assert refresh_token_check(secret=secret, service=SERVICE) is not None
    user.set_password("a-new-password-42")
    user.save()
    assert refresh_token_check(secret=secret, service=SERVICE) is None


def test_a_token_login_keeps_the_tokens_limits_and_dies_with_it():
    user = UserFactory(username="bob")
    issued = access_token_issue(user=user, name="ci", scopes=["pull"], repositories=["team/*"], expires_in_days=3)
    principal = credentials_check(username="bob", secret=issued.secret)
    secret = refresh_token_issue(principal=principal, service=SERVICE)
    row = RefreshToken.objects.get()
    assert row.access_token_id == issued.token.pk and row.expires_at == issued.token.expires_at  # capped at the PAT's expiry
    again = refresh_token_check(secret=secret, service=SERVICE)
    assert (again.kind, again.name, again.scopes, again.repositories) == ("user", "bob", ("pull",), ("team/*",))
    user.set_password("changed-but-irrelevant-1")
    user.save()
    assert refresh_token_check(secret=secret, service=SERVICE) is not None  # tokens outlive password changes
    access_token_revoke(user=user, token_id=issued.token.pk)
    assert RefreshToken.objects.get().revoked_at is not None
    assert refresh_token_check(secret=secret, service=SERVICE) is None


def test_an_expired_access_token_ends_its_refresh_tokens():
    user = UserFactory(username="carl")
    issued = access_token_issue(user=user, name="ci", scopes=["pull"])
    secret = refresh_token_issue(principal=credentials_check(username="carl", secret=issued.secret), service=SERVICE)
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refresh_token_check(secret=secret, service=SERVICE) is None


def test_a_robot_refresh_token_ends_when_the_robot_is_revoked_or_expires():
    acme = make_tenant("acme")
    robot = robot_create(tenant=acme, name="ci", scopes=["pull", "push"], repositories=["app"])
    principal = credentials_check(username="acme+ci", secret=robot.secret)
    secret = refresh_token_issue(principal=principal, service=SERVICE)
    again = refresh_token_check(secret=secret, service=SERVICE)
    assert (again.kind, again.name, again.tenant_id, again.scopes, again.repositories) == (
        "robot",
        "acme+ci",
        acme.pk,
        ("pull", "push"),
        ("app",),
    )
    RobotAccount.objects.filter(pk=robot.robot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refresh_token_check(secret=secret, service=SERVICE) is None
    RobotAccount.objects.filter(pk=robot.robot.pk).update(expires_at=None)
    assert refresh_token_check(secret=secret, service=SERVICE) is not None
    robot_revoke(tenant=acme, name="ci")
    assert RefreshToken.objects.get().revoked_at is not None
    assert refresh_token_check(secret=secret, service=SERVICE) is None


def test_revoke_takes_exactly_one_owner_and_touches_only_theirs():
    a, b = password_login("ann"), password_login("ben")
    sa = refresh_token_issue(principal=a, service=SERVICE)
    sb = refresh_token_issue(principal=b, service=SERVICE)
    with pytest.raises(ValueError, match="exactly one"):
        refresh_tokens_revoke()
    with pytest.raises(ValueError, match="exactly one"):
        refresh_tokens_revoke(user=a.user, robot=RobotAccount())
    assert refresh_tokens_revoke(user=a.user) == 1
    assert refresh_token_check(secret=sa, service=SERVICE) is None
    assert refresh_token_check(secret=sb, service=SERVICE) == b


@pytest.mark.parametrize("service", ["", "   ", "x" * 256])
def test_a_service_is_required(service):
    with pytest.raises(ValidationError, match="service"):
        refresh_token_issue(principal=password_login(), service=service)
    assert not RefreshToken.objects.exists()
