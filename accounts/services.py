"""Writes for tenants, users, memberships and personal access tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, PersonalAccessToken, Tenant, TokenScope, User
from accounts.validators import validate_tenant_slug
from gateway.core.errors import Conflict, NotFound, ValidationError

TOKEN_PREFIX = "wharf_pat_"
ALL_SCOPES = tuple(TokenScope.values)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (a slow hash buys nothing for 256-bit randoms)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def user_get_or_create(*, username: str, email: str = "", password: str | None = None) -> tuple[User, bool]:
    """The user with this username, created (with the password, if given) when missing."""
    username = username.strip()
    if not username or len(username) > 150:
        raise ValidationError("A username of 1 to 150 characters is required.")
    if not all(c.isalnum() or c in "@.+-_" for c in username):
        raise ValidationError(f"Username {username!r} may hold only letters, digits and @ . + - _")
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if created:
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save(update_fields=["password"])
    return user, created


@transaction.atomic
def tenant_create(*, slug: str, owner: User, name: str = "") -> Tenant:
    """Create a tenant with `owner` as its owner. Refuses bad, reserved or taken slugs."""
    validate_tenant_slug(slug)
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise Conflict(f"Tenant {slug!r} already exists.") from None
    Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    return tenant


def membership_set(*, tenant: Tenant, user: User, role: str) -> Membership:
    """Give `user` `role` in `tenant` (create or change); idempotent."""
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}.")
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    return membership


def tenant_quota_set(*, tenant: Tenant, storage_quota_bytes: int | None) -> None:
    """Set the storage quota (billing calls this; the registry reads it at upload finish)."""
    if storage_quota_bytes is not None and storage_quota_bytes < 0:
        raise ValidationError("A storage quota cannot be negative.")
    Tenant.objects.filter(pk=tenant.pk).update(storage_quota_bytes=storage_quota_bytes, updated_at=timezone.now())


@dataclass(frozen=True)
class IssuedToken:
    token: PersonalAccessToken
    secret: str  # shown once, never stored


def access_token_issue(
    *, user: User, name: str, scopes: list[str] | tuple[str, ...] = ALL_SCOPES, expires_in_days: int | None = None
) -> IssuedToken:
    """Create a personal access token; the secret is returned once and only its hash is kept."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError("A token name of 1 to 100 characters is required.")
    clean = sorted(set(scopes), key=ALL_SCOPES.index) if all(s in ALL_SCOPES for s in scopes) else None
    if not clean:
        bad = [s for s in scopes if s not in ALL_SCOPES]
        raise ValidationError(f"Unknown or missing scopes {bad or scopes!r}; use some of {', '.join(ALL_SCOPES)}.")
    expires_at: datetime | None = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= 3650:
            raise ValidationError("A token must expire in 1 to 3650 days.")
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PersonalAccessToken.objects.create(
        user=user, name=name, prefix=secret[: len(TOKEN_PREFIX) + 6], token_hash=hash_secret(secret), scopes=clean, expires_at=expires_at
    )
    return IssuedToken(token=token, secret=secret)


def access_token_revoke(*, user: User, token_id: int) -> None:
    """Revoke one of the user's tokens; revoking twice is harmless."""
    updated = PersonalAccessToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if not updated and not PersonalAccessToken.objects.filter(pk=token_id, user=user).exists():
        raise NotFound("No such token.")


def access_token_touch(*, token: PersonalAccessToken, min_interval_s: int = 60) -> None:
    """Record last use, at most once a minute per token (a write per pull would be wasteful)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= min_interval_s:
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
