"""Digests: parsing, the algorithms content may be addressed by, and the resumable SHA-256 used while bytes stream in."""

from __future__ import annotations

import hashlib
import re

import rehashes

from gateway.registry.errors import DigestInvalid

_DIGEST = re.compile(r"^(?P<algo>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")
# The OCI image spec's registered algorithms and the length of their lower-case hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
CANONICAL = "sha256"  # what a manifest pushed by tag (or a blob pushed without a digest) is addressed by


def parse_digest(value: str) -> str:
    """Validate `algo:hex` for a registered algorithm (sha256, sha512) with lower-case hex of its length. Returns the digest."""
    m = _DIGEST.match(value or "")
    if not m:
        raise DigestInvalid(f"invalid digest {(value or '')[:100]!r}", detail={"digest": (value or "")[:200]})
    algo, hexpart = m.group("algo"), m.group("hex")
    if algo not in ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm {algo[:20]!r}; use sha256 or sha512", detail={"digest": value[:200]})
    if len(hexpart) != ALGORITHMS[algo] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise DigestInvalid(f"invalid {algo} digest {value[:100]!r}", detail={"digest": value[:200]})
    return value


def is_digest(reference: str) -> bool:
    return ":" in reference


def digest_algorithm(digest: str) -> str:
    """The algorithm of a parsed digest (`sha256` of `sha256:...`)."""
    return digest.partition(":")[0]


def new_hasher(algorithm: str) -> "hashlib._Hash":
    """A fresh hashlib object for a registered algorithm (ValueError for any other)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm[:20]!r}")
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = CANONICAL) -> str:
    """The digest of some bytes with this algorithm (`sha256:<hex>` by default)."""
    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


class ResumableSha256:
    """SHA-256 whose internal state can be saved between requests (rehashes' serialize)."""

    def __init__(self, state: bytes | None = None) -> None:
        self._h = rehashes.PySha256.deserialize(bytes(state)) if state else rehashes.PySha256()

    def update(self, data: bytes) -> None:
        self._h.update(data if isinstance(data, bytes) else bytes(data))

    def state(self) -> bytes:
        return bytes(self._h.serialize())

    def digest(self) -> str:
        # finalize() consumes the state; work on a copy so the object stays usable.
        return "sha256:" + rehashes.PySha256.deserialize(self._h.serialize()).finalize()
