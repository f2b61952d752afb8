"""Token signing keys: EC P-256 PEM files in GATEWAY_TOKEN_KEYS_DIR, created, listed, retired, cached.

Files are named `<UTC timestamp>-<kid prefix>.pem` by `token_key_create` so that file names sort
by age. The newest file signs; every file verifies, so a key can be added ahead of use and a
retired key's tokens stop verifying when its file goes. `kid` is the key's RFC 7638 JWK
thumbprint (SHA-256, base64url); keys we generate never have one starting with '-' (so it
cannot pass for an option on a command line), keys from elsewhere may. Keys are cached per
process and the directory listing is compared again at most every RESCAN_SECONDS (and at once,
at most every second, when a token names an unknown kid), so every process sees a rotation
within seconds. Signing and verifying tokens is accounts/tokens.py.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured

from accounts.conf import app_settings
from gateway.core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

KEYS_SETTING = "GATEWAY_TOKEN_KEYS_DIR"
RESCAN_SECONDS = 5.0
UNKNOWN_KID_RESCAN_SECONDS = 1.0
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class TokenKey:
    kid: str
    path: Path
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class TokenKeyInfo:
    kid: str
    path: Path
    signing: bool


@dataclass
class _KeyRing:
    listing: tuple[tuple[str, int, int], ...]
    keys: dict[str, TokenKey]  # kid → key
    signing: TokenKey
    checked_at: float


_rings: dict[str, _KeyRing] = {}
_lock = threading.Lock()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK SHA-256 thumbprint of a P-256 public key, base64url without padding."""
    numbers = public_key.public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _keys_dir() -> Path:
    directory = app_settings.token_keys_dir
    if directory is None:
        raise ImproperlyConfigured(f"{KEYS_SETTING} must be set to a directory of ES256 (EC P-256) PEM private keys.")
    return directory


def _listing(directory: Path, *, create: bool) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime_ns, size) of the directory's *.pem files, sorted by name (oldest key first)."""
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with os.scandir(directory) as entries:
            found = []
            for entry in entries:
                if entry.name.endswith(".pem") and not entry.name.startswith(".") and entry.is_file():
                    st = entry.stat()
                    found.append((entry.name, st.st_mtime_ns, st.st_size))
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{KEYS_SETTING} ({directory}) does not exist; create a key with `manage.py token_key_create`."
        ) from None
    except NotADirectoryError:
        raise ImproperlyConfigured(f"{KEYS_SETTING} ({directory}) is not a directory.") from None
    return tuple(sorted(found))


def _load_key(path: Path) -> TokenKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{KEYS_SETTING}: {path} is not an unencrypted PEM private key ({exc}).") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ImproperlyConfigured(f"{KEYS_SETTING}: {path} is not an EC P-256 private key (ES256 needs one).")
    if path.stat().st_mode & 0o077:
        log.warning("token signing key %s is readable by other users; chmod 600 it", path)
    return TokenKey(kid=key_thumbprint(key.public_key()), path=path, private_key=key)


def _load_keys(directory: Path, listing: tuple[tuple[str, int, int], ...]) -> list[TokenKey]:
    """The keys of a listing, oldest first; a file removed meanwhile (a retirement elsewhere) is skipped."""
    keys = []
    for name, _, _ in listing:
        try:
            keys.append(_load_key(directory / name))
        except FileNotFoundError:
            continue
    return keys


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock across processes for creating and retiring keys in `directory`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _generate_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new P-256 key and its kid, re-drawn while the kid starts with '-' (1 in 64), which a command line takes for an option."""
    while True:
        private_key = ec.generate_private_key(ec.SECP256R1())
        kid = key_thumbprint(private_key.public_key())
        if not kid.startswith("-"):
            return private_key, kid


def _write_key(directory: Path, existing: tuple[tuple[str, int, int], ...]) -> TokenKey:
    """Generate a P-256 key and write it (0600, atomically) under a name that sorts after every existing key."""
    private_key, kid = _generate_key()
    name = f"{datetime.now(UTC).strftime(_STAMP_FORMAT)}-{kid[:8]}.pem"
    if existing and existing[-1][0] >= name:
        raise Conflict(
            f"Key file {existing[-1][0]!r} in {directory} sorts after the new key {name!r}, so the new key would not sign. "
            "Name key files <UTC timestamp>-<anything>.pem (as token_key_create does) or check the clock."
        )
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / name)
    return TokenKey(kid=kid, path=directory / name, private_key=private_key)


def _ring(*, max_age: float | None = None) -> _KeyRing:
    """This process's keys for the configured directory, re-listed when older than `max_age` (RESCAN_SECONDS)."""
    max_age = RESCAN_SECONDS if max_age is None else max_age
    directory = _keys_dir()
    cache_key = str(directory)
    autocreate = app_settings.token_keys_autocreate
    with _lock:
        now = time.monotonic()
        ring = _rings.get(cache_key)
        if ring is not None and now - ring.checked_at < max_age:
            return ring
        listing = _listing(directory, create=autocreate)
        if ring is not None and listing == ring.listing:
            ring.checked_at = now
            return ring
        if not listing:
            if not autocreate:
                raise ImproperlyConfigured(
                    f"{KEYS_SETTING} ({directory}) holds no signing key (*.pem); create one with `manage.py token_key_create`."
                )
            with _directory_lock(directory):
                listing = _listing(directory, create=True)
                if not listing:  # no other process made one meanwhile
                    key = _write_key(directory, listing)
                    log.info("generated token signing key %s in %s", key.kid, directory)
                    listing = _listing(directory, create=True)
        keys = _load_keys(directory, listing)
        if not keys:
            raise ImproperlyConfigured(f"{KEYS_SETTING} ({directory}) holds no readable signing key.")
        ring = _rings[cache_key] = _KeyRing(listing=listing, keys={k.kid: k for k in keys}, signing=keys[-1], checked_at=now)
        return ring


def signing_key() -> TokenKey:
    """The key that signs now (the newest file)."""
    return _ring().signing


def verification_key(kid: str) -> TokenKey | None:
    """The key with this kid, looking at the directory again (at most once a second) for one another process just created."""
    key = _ring().keys.get(kid)
    if key is None:
        key = _ring(max_age=UNKNOWN_KID_RESCAN_SECONDS).keys.get(kid)
    return key


def _forget_keys() -> None:
    with _lock:
        _rings.clear()


def token_key_create() -> str:
    """Create a new signing key file (mode 0600) that becomes the signing key; returns its kid."""
    directory = _keys_dir()
    with _directory_lock(directory):
        key = _write_key(directory, _listing(directory, create=True))
    _forget_keys()
    log.info("created token signing key %s in %s", key.kid, directory)
    return key.kid


def token_key_retire(*, kid: str) -> None:
    """Delete the key file(s) with this kid; tokens it signed stop verifying. Refuses to retire the only key."""
    directory = _keys_dir()
    with _directory_lock(directory):
        keys = _load_keys(directory, _listing(directory, create=False))
        matching = [k for k in keys if k.kid == kid]
        if not matching:
            raise NotFound(f"No token signing key with kid {kid!r} in {directory}.")
        if not {k.kid for k in keys} - {kid}:
            raise Conflict(f"Refusing to retire {kid!r}: it is the only signing key. Create a new one first (token_key_create).")
        for key in matching:
            key.path.unlink(missing_ok=True)
    _forget_keys()
    log.info("retired token signing key %s from %s", kid, directory)


def token_key_list() -> list[TokenKeyInfo]:
    """Every key in the directory, oldest first, with the one that signs marked."""
    ring = _ring(max_age=0)
    return [TokenKeyInfo(kid=k.kid, path=k.path, signing=k.kid == ring.signing.kid) for k in ring.keys.values()]
