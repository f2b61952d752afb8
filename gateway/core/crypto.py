"""Secrets at rest (storage-target secret keys, webhook signing secrets): Fernet, keyed by a setting.

The Fernet key is derived with HKDF-SHA256 from `GATEWAY_ENCRYPTION_KEY` (any long random
string; production requires it, local/test settings carry a dev-only default). Keys listed in
`GATEWAY_ENCRYPTION_KEYS_PREVIOUS` still decrypt, so the key can be rotated: set the new key,
move the old one to the previous list, re-save the secrets, then drop the old key.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_INFO = b"wharf secrets at rest v1"


class SecretDecryptError(Exception):
    """A stored secret does not decrypt with any configured key (wrong or rotated-away key)."""


def _derive(secret: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


@functools.lru_cache(maxsize=8)
def _fernet(current: str, previous: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(current), *(_derive(p) for p in previous)])


def _keys() -> tuple[str, tuple[str, ...]]:
    current = str(getattr(settings, "GATEWAY_ENCRYPTION_KEY", "") or "")
    if len(current) < 32:
        raise ImproperlyConfigured("GATEWAY_ENCRYPTION_KEY must be set to a random string of at least 32 characters.")
    previous = tuple(str(k) for k in getattr(settings, "GATEWAY_ENCRYPTION_KEYS_PREVIOUS", ()) if k)
    return current, previous


def secret_encrypt(plaintext: str) -> str:
    """Encrypt a secret with the current key; the result is ASCII, safe for a text column."""
    if not isinstance(plaintext, str):
        raise TypeError("secret_encrypt takes a str")
    return _fernet(*_keys()).encrypt(plaintext.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    """Decrypt what secret_encrypt returned, with the current or a previous key."""
    try:
        return _fernet(*_keys()).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretDecryptError(
            "a stored secret does not decrypt with GATEWAY_ENCRYPTION_KEY (or GATEWAY_ENCRYPTION_KEYS_PREVIOUS); "
            "was the key changed without keeping the old one?"
        ) from exc


__all__ = ["SecretDecryptError", "secret_decrypt", "secret_encrypt"]
