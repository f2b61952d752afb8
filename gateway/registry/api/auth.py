"""Registry request authentication: Bearer tokens from /auth/token, or HTTP Basic.

- Bearer: a JWT signed by accounts.tokens; its `access` claim is all the request may do.
  Verified tokens are remembered until they expire (one signature check per token).
- Basic (kept for clients that send it): a password, personal access token or robot
  secret. Checking a password hash costs ~100 ms, so a success is remembered in-process for
  CACHE_SECONDS, keyed by a hash of the credentials; a revoked token stops working within
  that time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from dataclasses import dataclass

from accounts.selectors import Principal, credentials_check
from accounts.tokens import InvalidToken, token_verify

CACHE_SECONDS = 30.0
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Identity:
    """Who is asking: a principal (Basic), token grants (Bearer), or nobody."""

    principal: Principal | None = None
    grants: dict[str, frozenset[str]] | None = None  # "repository:<name>" / "registry:catalog" → actions
    subject: str = ""

    @property
    def anonymous(self) -> bool:
        return self.principal is None and not self.subject

    @property
    def bearer(self) -> bool:
        return self.grants is not None

    @property
    def actor(self) -> str:
        if self.principal is not None:
            return self.principal.name
        return self.subject or "anonymous"


ANONYMOUS = Identity()


class BadCredentials(Exception):
    def __init__(self, message: str, *, bearer: bool = False) -> None:
        super().__init__(message)
        self.bearer = bearer


_cache: dict[str, tuple[float, Identity]] = {}
_lock = threading.Lock()


def _cached(key: str) -> Identity | None:
    with _lock:
        hit = _cache.get(key)
    return hit[1] if hit and hit[0] > time.monotonic() else None


def _remember(key: str, identity: Identity, until: float) -> None:
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (until, identity)


def basic_principal(authorization: str) -> Principal:
    """The principal a `Basic` header names, or BadCredentials."""
    try:
        decoded = base64.b64decode(authorization.partition(" ")[2].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("malformed Basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username or not secret:
        raise BadCredentials("malformed Basic credentials")
    principal = credentials_check(username=username, secret=secret)
    if principal is None:
        raise BadCredentials("invalid username or password")
    return principal


def authenticate(authorization: str, *, audience: str) -> Identity:
    """The identity an Authorization header names; ANONYMOUS without one; BadCredentials if wrong."""
    if not authorization:
        return ANONYMOUS
    scheme = authorization.partition(" ")[0].lower()
    key = hashlib.sha256(f"{audience}\n{authorization}".encode()).hexdigest()
    hit = _cached(key)
    if hit is not None:
        return hit
    if scheme == "bearer":
        try:
            claims = token_verify(token=authorization.partition(" ")[2].strip(), audience=audience)
        except InvalidToken as exc:
            raise BadCredentials(str(exc), bearer=True) from None
        grants: dict[str, frozenset[str]] = {}
        for entry in claims.get("access") or []:  # type: ignore[union-attr]
            resource = f"{entry['type']}:{entry['name']}"
            grants[resource] = grants.get(resource, frozenset()) | frozenset(entry.get("actions") or [])
        identity = Identity(grants=grants, subject=str(claims.get("sub") or ""))
        _remember(key, identity, time.monotonic() + max(0.0, float(claims["exp"]) - time.time()))  # type: ignore[arg-type]
        return identity
    if scheme == "basic":
        identity = Identity(principal=basic_principal(authorization))
        _remember(key, identity, time.monotonic() + CACHE_SECONDS)
        return identity
    raise BadCredentials("unsupported authorization scheme")


def forget_cached_credentials() -> None:
    with _lock:
        _cache.clear()
