"""Registry bearer tokens (Docker token auth): ES256 JWT signing and verification.

Tokens are signed by the newest key and verified by any key of accounts/token_keys.py (where
keys are created, rotated and retired). This module knows nothing about repositories: `access`
is checked for shape only.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import jwt

from accounts.conf import app_settings
from accounts.token_keys import signing_key, verification_key

ALGORITHM = "ES256"
LEEWAY_SECONDS = 30  # clock skew allowed on nbf and iat only; exp is exact
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 3600
MAX_TOKEN_LENGTH = 16 * 1024
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access")


class InvalidToken(Exception):
    """A bearer token that must not be accepted; the message is safe to show the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SignedToken:
    token: str
    issued_at: datetime  # aware, UTC
    expires_in: int  # seconds


def _access_problem(access: object) -> str | None:
    """Why `access` is not a Docker token `access` claim (a list of {type, name, actions}), or None."""
    if not isinstance(access, list):
        return "the access claim must be a list"
    for i, entry in enumerate(access):
        if not isinstance(entry, dict):
            return f"access[{i}] must be an object"
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not kind:
            return f"access[{i}].type must be a non-empty string"
        if not isinstance(name, str) or not name:
            return f"access[{i}].name must be a non-empty string"
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            return f"access[{i}].actions must be a list of non-empty strings"
    return None


def token_sign(
    *,
    subject: str,
    audience: str,
    access: list[dict[str, object]],
    expires_in: int | None = None,
    private_claims: dict[str, object] | None = None,
) -> SignedToken:
    """An ES256 JWT for `audience` (the service) granting `access`, signed with the newest key; expires_in 60–3600 s.

    `private_claims` are added beside the registered ones and cannot replace them.
    """
    if not isinstance(subject, str):
        raise ValueError("subject must be a string (empty for anonymous).")
    if not isinstance(audience, str) or not audience:
        raise ValueError("audience (the service) must be a non-empty string.")
    problem = _access_problem(access)
    if problem:
        raise ValueError(problem)
    clash = set(private_claims or ()) & set(REQUIRED_CLAIMS)
    if clash:
        raise ValueError(f"private claims may not replace {sorted(clash)}.")
    ttl = app_settings.token_ttl_seconds if expires_in is None else expires_in
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"expires_in must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} seconds, got {ttl!r}.")
    key = signing_key()
    now = int(time.time())
    claims = {
        **(private_claims or {}),
        "iss": app_settings.token_issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "access": access,
    }
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})
    return SignedToken(token=token, issued_at=datetime.fromtimestamp(now, UTC), expires_in=ttl)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def token_verify(*, token: str, audience: str) -> dict[str, object]:
    """The claims of a token we signed for `audience`; InvalidToken for anything else (ES256 only, exact expiry)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise InvalidToken(f"token algorithm {alg!r} is not accepted")
    if "crit" in header or "b64" in header:
        raise InvalidToken("token uses unsupported header extensions")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token has no key id")
    key = verification_key(kid)
    if key is None:
        raise InvalidToken("token was signed by an unknown key")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            # Signature only; the claims are checked below, with our own rules and messages.
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature is invalid") from None
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    _check_claims(claims, audience=audience)
    return claims


def _check_claims(claims: dict[str, object], *, audience: str) -> None:
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise InvalidToken(f"token lacks the {name!r} claim")
    if claims["iss"] != app_settings.token_issuer:
        raise InvalidToken("token was issued by someone else")
    if not isinstance(claims["aud"], str) or claims["aud"] != audience:
        raise InvalidToken("token is for another service")
    if not all(_is_number(claims[name]) for name in ("exp", "nbf", "iat")):
        raise InvalidToken("token times (exp, nbf, iat) must be numbers")
    exp, nbf, iat = (cast(float, claims[name]) for name in ("exp", "nbf", "iat"))
    now = time.time()
    if exp <= now:
        raise InvalidToken("token has expired")
    if nbf > now + LEEWAY_SECONDS or iat > now + LEEWAY_SECONDS:
        raise InvalidToken("token is not valid yet")
    if exp - iat > MAX_TTL_SECONDS:
        raise InvalidToken("token lifetime is longer than allowed")
    if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
        raise InvalidToken("token sub and jti must be strings")
    problem = _access_problem(claims["access"])
    if problem:
        raise InvalidToken(f"token {problem}")
