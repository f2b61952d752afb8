"""Credential secrets: their prefixes, how they are hashed and made, and recording their last use."""

from __future__ import annotations

import hashlib
import secrets

from django.db.models import Model
from django.utils import timezone

from accounts.models import PersonalAccessToken, RefreshToken, RobotAccount

TOKEN_PREFIX = "wharf_pat_"
ROBOT_PREFIX = "wharf_rbt_"
REFRESH_PREFIX = "wharf_rft_"
TOUCH_INTERVAL_S = 60


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (a slow hash buys nothing for 256-bit randoms)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    """A new random secret with its kind's prefix (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def touch(obj: PersonalAccessToken | RobotAccount | RefreshToken, *, min_interval_s: int = TOUCH_INTERVAL_S) -> None:
    """Record last use, at most once per interval (a write per pull would be wasteful)."""
    now = timezone.now()
    if obj.last_used_at is None or (now - obj.last_used_at).total_seconds() >= min_interval_s:
        model: type[Model] = type(obj)
        model._default_manager.filter(pk=obj.pk).update(last_used_at=now)
        obj.last_used_at = now
