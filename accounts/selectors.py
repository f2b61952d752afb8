"""Reads for tenants, memberships and credentials."""

from __future__ import annotations

import hmac

from django.contrib.auth import authenticate
from django.utils import timezone

from accounts.models import Membership, PersonalAccessToken, Tenant, User
from accounts.services import TOKEN_PREFIX, access_token_touch, hash_secret


def tenant_get(*, slug: str) -> Tenant | None:
    """The active tenant with this slug, or None."""
    return Tenant.objects.filter(slug=slug, status=Tenant.Status.ACTIVE).first()


def membership_role_get(*, tenant: Tenant, user: User) -> str | None:
    """The user's role in the tenant, or None when not a member."""
    if not user.is_active:
        return None
    return Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()


def access_token_list(*, user: User) -> list[PersonalAccessToken]:
    return list(PersonalAccessToken.objects.filter(user=user).order_by("-created_at"))


def access_token_find(*, secret: str) -> PersonalAccessToken | None:
    """The active token with this secret (looked up by hash, compared in constant time)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    digest = hash_secret(secret)
    token = PersonalAccessToken.objects.select_related("user").active(now=timezone.now()).filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.user.is_active:
        return None
    return token


def credentials_check(*, username: str, secret: str) -> tuple[User, tuple[str, ...] | None] | None:
    """The user these Basic credentials name, with the token's scopes (None for a password)."""
    token = access_token_find(secret=secret)
    if token is not None:
        if token.user.username != username:
            return None
        access_token_touch(token=token)
        return token.user, tuple(token.scopes)
    user = authenticate(username=username, password=secret)
    if user is None:
        return None
    return user, None
