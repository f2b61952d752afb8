"""Digests: parsing and the resumable SHA-256 used while bytes stream in."""

from __future__ import annotations

import re

import rehashes

from gateway.registry.errors import DigestInvalid

_DIGEST = re.compile(r"^(?P<algo>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")
_HEX_LEN = {"sha256": 64, "sha512": 128}


def parse_digest(value: str) -> str:
    """Validate `algo:hex`; only sha256 is accepted for content we store. Returns the digest."""
    m = _DIGEST.match(value or "")
    if not m:
        raise DigestInvalid(f"invalid digest {value[:100]!r}", detail={"digest": value[:200]})
    algo, hexpart = m.group("algo"), m.group("hex")
    if algo not in _HEX_LEN:
        raise DigestInvalid(f"unsupported digest algorithm {algo!r}; use sha256", detail={"digest": value[:200]})
    if len(hexpart) != _HEX_LEN[algo] or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise DigestInvalid(f"invalid {algo} digest {value[:100]!r}", detail={"digest": value[:200]})
    if algo != "sha256":
        raise DigestInvalid(f"{algo} digests are not supported here; use sha256", detail={"digest": value[:200]})
    return value


def is_digest(reference: str) -> bool:
    return ":" in reference


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
