"""Refresh tokens (`docker login`'s long-lived sessions) and revoking a user's sessions everywhere."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.conf import app_settings
from accounts.models import RefreshToken, RobotAccount, User
from accounts.principals import Principal, principal_for_access_token, principal_for_password, principal_for_robot
from accounts.secrets import REFRESH_PREFIX, hash_secret, new_secret, touch
from gateway.core.errors import ValidationError

# --- Refresh tokens (OAuth2 offline access, `docker login`) -------------------------------------


def refresh_token_issue(*, principal: Principal, service: str) -> str:
    """A new refresh token for `principal` at `service`; returns the secret (stored hashed), valid N days."""
    service = (service or "").strip()
    if not service or len(service) > 255:
        raise ValidationError("A service of 1 to 255 characters is required.")
    expires_at = timezone.now() + timedelta(days=app_settings.refresh_token_days)
    row = RefreshToken(service=service)
    if principal.kind == "robot":
        if principal.robot is None:
            raise ValueError("A robot principal carries its robot.")
        row.robot = principal.robot
        if principal.robot.expires_at is not None:
            expires_at = min(expires_at, principal.robot.expires_at)
    else:
        if principal.user is None:
            raise ValueError("A user principal carries its user.")
        row.user = principal.user
        if principal.access_token is not None:
            row.access_token = principal.access_token
            if principal.access_token.expires_at is not None:
                expires_at = min(expires_at, principal.access_token.expires_at)
        else:
            row.user_auth_hash = principal.user.get_session_auth_hash()
    secret = new_secret(REFRESH_PREFIX)
    row.secret_hash = hash_secret(secret)
    row.expires_at = expires_at
    row.save()
    return secret


def refresh_token_check(*, secret: str, service: str) -> Principal | None:
    """The principal a refresh token stands for at `service`, or None (unknown, expired, revoked, or its owner is gone)."""
    if not isinstance(secret, str) or not secret.startswith(REFRESH_PREFIX) or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    row = (
        RefreshToken.objects.select_related("user", "robot__tenant", "access_token")
        .filter(secret_hash=digest, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if row is None or not hmac.compare_digest(row.secret_hash, digest) or row.service != service:
        return None
    principal: Principal
    if row.robot is not None:
        if not row.robot.is_active():
            return None
        principal = principal_for_robot(row.robot)
    else:
        user = row.user
        if user is None or not user.is_active:
            return None
        token = row.access_token
        if token is not None:
            if not token.is_active() or token.user_id != user.pk:
                return None
            token.user = user
            principal = principal_for_access_token(token)
        else:
            if not hmac.compare_digest(row.user_auth_hash, user.get_session_auth_hash()):
                return None  # the password changed since this login
            principal = principal_for_password(user)
    touch(row)
    return principal


def refresh_tokens_revoke(*, user: User | None = None, robot: RobotAccount | None = None) -> int:
    """Revoke every live refresh token of one user or one robot; returns how many; idempotent."""
    if (user is None) == (robot is None):
        raise ValueError("Pass exactly one of user or robot.")
    now = timezone.now()
    rows = RefreshToken.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    rows = rows.filter(user=user) if user is not None else rows.filter(robot=robot)
    return rows.update(revoked_at=now, updated_at=now)


@dataclass(frozen=True)
class RevokedSessions:
    refresh_tokens: int  # refresh tokens revoked
    session_epoch: int  # the user's new epoch; bearer tokens of older epochs are refused


@transaction.atomic
def user_sessions_revoke(*, user: User, actor: str | None = None) -> RevokedSessions:
    """End every session of `user` at once: revoke their refresh tokens and bump their session epoch; audited.

    Bearer tokens issued before stop verifying within auth.SESSION_CHECK_SECONDS (5 s) in every
    web process; passwords, personal access tokens and new logins keep working.
    """
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    epoch = User.objects.filter(pk=user.pk).values_list("session_epoch", flat=True).get()
    user.session_epoch = epoch
    revoked = refresh_tokens_revoke(user=user)
    audit_record(
        action="sessions.revoke",
        actor=actor or SYSTEM_ACTOR,
        target=user.username,
        detail={"refresh_tokens": revoked, "session_epoch": epoch},
    )
    return RevokedSessions(refresh_tokens=revoked, session_epoch=epoch)
