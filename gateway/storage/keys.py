"""Object keys. The only module that builds them (house style rule 19).

Keys keep to [a-z0-9/._-] (Storj's gateway can fail signatures on other bytes) and every
key of a tenant starts with `t/<tenant_id>/`, so a tenant's data is one prefix.
"""

from __future__ import annotations

import re
import uuid

_SAFE = re.compile(r"^[a-z0-9/._-]{1,512}$")


def _check(key: str) -> str:
    if not _SAFE.match(key):
        raise ValueError(f"unsafe object key {key!r}")
    return key


def tenant_prefix(tenant_id: int) -> str:
    return f"t/{int(tenant_id)}/"


def upload_key(tenant_id: int, upload_id: uuid.UUID) -> str:
    """Where an upload session writes its bytes; the blob stays there for life."""
    return _check(f"{tenant_prefix(tenant_id)}uploads/{upload_id.hex}")


def upload_tail_key(tenant_id: int, upload_id: uuid.UUID, offset: int) -> str:
    """A session's carried tail once the session is at `offset` (a new key per offset, so a crash never leaves a half-state)."""
    return _check(f"{upload_tail_prefix(tenant_id, upload_id)}{int(offset)}")


def upload_tail_prefix(tenant_id: int, upload_id: uuid.UUID) -> str:
    """Every tail object a session ever wrote starts with this, next to the session's own key (`/`-terminated: Storj lists only those)."""
    return f"{tenant_prefix(tenant_id)}uploads/{upload_id.hex}.tail/"


def uploads_prefix(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}uploads/"


def blob_index_key(tenant_id: int, digest: str) -> str:
    """Small JSON object {digest, size, key}: the bucket's own record of a committed blob."""
    algo, hexpart = digest.split(":", 1)
    return _check(f"{tenant_prefix(tenant_id)}index/blobs/{algo}/{hexpart}.json")


def blob_index_prefix(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}index/blobs/"


def manifest_key(tenant_id: int, repository: str, digest: str) -> str:
    """The exact bytes of a manifest as pushed to one repository."""
    algo, hexpart = digest.split(":", 1)
    return _check(f"{tenant_prefix(tenant_id)}repos/{repository}/_manifests/{algo}/{hexpart}")


def tag_key(tenant_id: int, repository: str, tag: str) -> str:
    """JSON {tag, digest}. Tags may hold upper case, so the key carries the tag's hex."""
    return _check(f"{tenant_prefix(tenant_id)}repos/{repository}/_tags/{tag.encode().hex()}")


def repos_prefix(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}repos/"
