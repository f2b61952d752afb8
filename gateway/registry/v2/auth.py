"""Registry request authentication: Bearer tokens from /auth/token, or HTTP Basic.

- Bearer: a JWT signed by accounts.tokens; its `access` claim is all the request may do.
  Verified tokens are remembered until they expire (one signature check per token), but
  whether the credential behind one still stands — the user active and their session epoch
  unchanged (`revoke_sessions`), the robot active, the personal access token not revoked —
  is looked up again at most every SESSION_CHECK_SECONDS per process (docs/decisions/0009).
- Basic (kept for clients that send it): a password, personal access token or robot secret,
  checked by accounts.logins.credentials_authenticate, the same throttled, audited path as
  /auth/token. Checking a password hash costs ~100 ms, so a success is remembered
  in-process for CACHE_SECONDS, keyed by a hash of the credentials; a revoked token stops
  working within that time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from accounts.logins import LoginFailed, LoginThrottled, credentials_authenticate
from accounts.selectors import Principal, token_subject_epoch
from accounts.tokens import InvalidToken, token_verify
from gateway.registry.access import TtlCache
from gateway.registry.errors import TooManyRequests

CACHE_SECONDS = 30.0
SESSION_CHECK_SECONDS = 5.0
WHARF_CLAIM = "wharf"  # our private claim: {"kind": "user"|"robot", "sv": session epoch, "pat": token id}
_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Identity:
    """Who is asking: a principal (Basic), token grants (Bearer), or nobody."""

    principal: Principal | None = None
    grants: dict[str, frozenset[str]] | None = None  # "repository:<name>" / "registry:catalog" → actions
    subject: str = ""
    robot: bool = False  # the subject is a robot (`<tenant>+<name>`)
    session: int = 0  # the user's session epoch when the token was issued
    access_token_id: int | None = None  # the personal access token behind the token, if one

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
_epochs = TtlCache(SESSION_CHECK_SECONDS)


def _cached(key: str) -> Identity | None:
    with _lock:
        hit = _cache.get(key)
    return hit[1] if hit and hit[0] > time.monotonic() else None


def _remember(key: str, identity: Identity, until: float) -> None:
    with _lock:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (until, identity)


def basic_credentials(authorization: str) -> tuple[str, str]:
    """(username, secret) of a `Basic` header; BadCredentials when malformed (NUL bytes included)."""
    try:
        decoded = base64.b64decode(authorization.partition(" ")[2].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("malformed Basic credentials") from None
    username, sep, secret = decoded.partition(":")
    if not sep or not username or not secret or "\x00" in username:
        raise BadCredentials("malformed Basic credentials")
    return username, secret


def basic_principal(
    authorization: str, *, ip: str, user_agent: str, service: str, channel: str, record_success: bool = False
) -> Principal:
    """The principal a `Basic` header names, through the throttled, audited login path; BadCredentials or 429."""
    username, secret = basic_credentials(authorization)
    try:
        return credentials_authenticate(
            username=username,
            secret=secret,
            ip=ip,
            user_agent=user_agent,
            service=service,
            channel=channel,
            record_success=record_success,
        )
    except LoginThrottled as exc:
        raise TooManyRequests(exc.message, headers={"Retry-After": str(exc.retry_after)}) from None
    except LoginFailed as exc:
        raise BadCredentials(exc.message) from None


def _bearer_identity(claims: dict[str, Any]) -> Identity:
    grants: dict[str, frozenset[str]] = {}
    for entry in claims.get("access") or []:
        resource = f"{entry['type']}:{entry['name']}"
        grants[resource] = grants.get(resource, frozenset()) | frozenset(entry.get("actions") or [])
    subject = str(claims.get("sub") or "")
    ours = claims.get(WHARF_CLAIM)
    if ours is None:  # a token from before the claim existed
        return Identity(grants=grants, subject=subject, robot="+" in subject)
    kind, session, pat = (ours.get("kind"), ours.get("sv", 0), ours.get("pat")) if isinstance(ours, dict) else (None, None, None)
    if kind not in ("user", "robot") or type(session) is not int or not (pat is None or type(pat) is int):
        raise BadCredentials("token has a malformed wharf claim", bearer=True)
    return Identity(grants=grants, subject=subject, robot=kind == "robot", session=session, access_token_id=pat)


def _still_valid(identity: Identity) -> bool:
    """Whether the credential behind a bearer token still stands (anonymous tokens always do); cached briefly."""
    if not identity.subject:
        return True
    key = (identity.subject, identity.robot, identity.access_token_id)
    epoch = _epochs.get(
        key, lambda: token_subject_epoch(subject=identity.subject, robot=identity.robot, access_token_id=identity.access_token_id)
    )
    return epoch is not None and epoch == identity.session


def authenticate(authorization: str, *, audience: str, ip: str = "", user_agent: str = "") -> Identity:
    """The identity an Authorization header names; ANONYMOUS without one; BadCredentials if wrong, 429 if throttled."""
    if not authorization:
        return ANONYMOUS
    scheme = authorization.partition(" ")[0].lower()
    key = hashlib.sha256(f"{audience}\n{authorization}".encode()).hexdigest()
    identity = _cached(key)
    if identity is None and scheme == "bearer":
        try:
            claims = token_verify(token=authorization.partition(" ")[2].strip(), audience=audience)
        except InvalidToken as exc:
            raise BadCredentials(str(exc), bearer=True) from None
        identity = _bearer_identity(claims)
        _remember(key, identity, time.monotonic() + max(0.0, float(claims["exp"]) - time.time()))  # type: ignore[arg-type]
    elif identity is None and scheme == "basic":
        identity = Identity(
            principal=basic_principal(authorization, ip=ip, user_agent=user_agent, service=audience, channel="v2")
        )
        _remember(key, identity, time.monotonic() + CACHE_SECONDS)
    elif identity is None:
        raise BadCredentials("unsupported authorization scheme")
    if identity.bearer and not _still_valid(identity):
        raise BadCredentials("token was revoked", bearer=True)
    return identity


def forget_cached_credentials() -> None:
    """Forget verified credentials and session epochs (tests; what the cache lifetimes do in production)."""
    with _lock:
        _cache.clear()
    _epochs.clear()
