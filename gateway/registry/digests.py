"""Digests: parsing, the algorithms content may be addressed by, and the resumable SHA-256/SHA-512
hasher used while upload bytes stream in."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

import rehashes

from gateway.registry.errors import DigestInvalid

_DIGEST = re.compile(r"^(?P<algo>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")
# The OCI image spec's registered algorithms and the length of their lower-case hex encoding.
HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha512": 128}
ALGORITHMS: tuple[str, ...] = tuple(HEX_LENGTHS)
CANONICAL = "sha256"  # what a manifest pushed by tag (or a blob pushed without a digest) is addressed by


def parse_digest(value: str) -> str:
    """Validate `algo:hex` for a registered algorithm (sha256, sha512) with lower-case hex of its length. Returns the digest."""
    m = _DIGEST.match(value or "")
    if not m:
        raise DigestInvalid(f"invalid digest {(value or '')[:100]!r}", detail={"digest": (value or "")[:200]})
    algo, hexpart = m.group("algo"), m.group("hex")
    if algo not in ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algo[:20]!r}; use sha256 or sha512", detail={"digest": value[:200]})
    if len(hexpart) != HEX_LENGTHS[algo] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise DigestInvalid(f"invalid {algo} digest {value[:100]!r}", detail={"digest": value[:200]})
    return value


def is_digest(reference: str) -> bool:
    return ":" in reference


def digest_algorithm(digest: str) -> str:
    """The algorithm of a parsed digest (`sha256` of `sha256:...`)."""
    return digest.partition(":")[0]


def new_hasher(algorithm: str) -> hashlib._Hash:
    """A fresh hashlib object for a registered algorithm (ValueError for any other)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm[:20]!r}")
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = CANONICAL) -> str:
    """The digest of some bytes with this algorithm (`sha256:<hex>` by default)."""
    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def parse_algorithm(value: str) -> str:
    """Validate a `digest-algorithm` upload hint (OCI distribution-spec: sha256 or sha512)."""
    if value not in ALGORITHMS:
        raise DigestInvalid(
            f"unsupported digest-algorithm {value[:40]!r}; use one of {', '.join(ALGORITHMS)}",
            detail={"digest-algorithm": value[:100]},
        )
    return value


_IMPLS = {"sha256": rehashes.PySha256, "sha512": rehashes.PySha512}
# Before decision 0012 the state was PySha256's raw serialization, always this long; the JSON form never is.
_LEGACY_SHA256_STATE_LEN = 104


class ResumableHasher:
    """SHA-256 and/or SHA-512 over the same bytes, whose state can be saved between requests (rehashes' serialize).

    The state is JSON `{"sha256": hex, "sha512": hex}` holding the algorithms the session hashes;
    a 104-byte state is a pre-0012 session's raw SHA-256 state and is read as sha256 only.
    """

    def __init__(self, state: bytes | None = None, *, algorithms: Iterable[str] = ALGORITHMS) -> None:
        if not state:
            self._h = {a: _IMPLS[a]() for a in algorithms}
        elif len(state) == _LEGACY_SHA256_STATE_LEN:
            self._h = {"sha256": rehashes.PySha256.deserialize(bytes(state))}
        else:
            saved = json.loads(bytes(state))
            self._h = {a: _IMPLS[a].deserialize(bytes.fromhex(saved[a])) for a in ALGORITHMS if a in saved}
        if not self._h:
            raise ValueError("a hasher needs at least one algorithm")

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._h)

    def update(self, data: bytes) -> None:
        chunk = data if isinstance(data, bytes) else bytes(data)
        for h in self._h.values():
            h.update(chunk)

    def state(self) -> bytes:
        return json.dumps({a: bytes(h.serialize()).hex() for a, h in self._h.items()}).encode()

    def digest(self, algorithm: str = "sha256") -> str:
        """`algorithm:hex` of the bytes so far; KeyError if this session does not hash `algorithm`."""
        h = self._h[algorithm]
        # finalize() consumes the state; work on a copy so the object stays usable.
        return f"{algorithm}:" + _IMPLS[algorithm].deserialize(h.serialize()).finalize()
