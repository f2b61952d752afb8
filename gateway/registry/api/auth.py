"""Registry authentication: HTTP Basic with a password or a personal access token.

Registry clients send credentials on every request; checking a password hash each time
would cost ~100 ms, so a successful check is remembered in-process for a short time,
keyed by a hash of the credentials (a revoked token stops working within CACHE_SECONDS).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from dataclasses import dataclass

from accounts.models import User
from accounts.selectors import credentials_check

CACHE_SECONDS = 30.0
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Identity:
    user: User | None
    scopes: tuple[str, ...] | None  # a token's scopes; None for a password (the role decides)

    @property
    def anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Identity(user=None, scopes=None)


class BadCredentials(Exception):
    pass


_cache: dict[str, tuple[float, Identity]] = {}
_lock = threading.Lock()


def authenticate(authorization: str) -> Identity:
    """The identity an Authorization header names; ANONYMOUS without one; BadCredentials if wrong."""
    if not authorization:
        return ANONYMOUS
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise BadCredentials("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("malformed Basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username or not secret:
        raise BadCredentials("malformed Basic credentials")
    key = hashlib.sha256(decoded.encode()).hexdigest()
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit and hit[0] > now:
        return hit[1]
    found = credentials_check(username=username, secret=secret)
    if found is None:
        raise BadCredentials("invalid username or password")
    identity = Identity(user=found[0], scopes=found[1])
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (now + CACHE_SECONDS, identity)
    return identity


def forget_cached_credentials() -> None:
    with _lock:
        _cache.clear()
