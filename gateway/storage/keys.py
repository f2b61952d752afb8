"""Object keys. The only module that builds them (house style rule 19).

Keys keep to [a-z0-9/._-] (Storj's gateway can fail signatures on other bytes, docs/storj.md §6) and every
key of a tenant starts with `t/<tenant_id>/`, so a tenant's data is one prefix.

Lengths (docs/decisions/0011): no key is longer than 512 characters (Storj's limit is 1280
bytes of *encrypted* key, roughly the plain key plus 40 bytes per path component) and no path
component longer than 255 (SeaweedFS, like most file-system-backed S3 servers, answers
KeyTooLongError above that). Every name a client may choose fits: see `tag_key`.
"""

from __future__ import annotations

import base64
import re
import uuid

MAX_KEY = 512
MAX_COMPONENT = 255
_SAFE = re.compile(rf"^[a-z0-9/._-]{{1,{MAX_KEY}}}$")
_TAG_BASE32 = "b32."  # marks a base32 tag name; '.' is not a hex digit, so the two forms never collide


def is_valid_key(key: str) -> bool:
    """Whether a key keeps to the charset and the lengths above (what every key we build does)."""
    return bool(_SAFE.match(key)) and all(len(part) <= MAX_COMPONENT for part in key.split("/"))


def _check(key: str) -> str:
    if not is_valid_key(key):
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


def blob_index_doc(digest: str, size: int, key: str) -> dict[str, object]:
    """What a blob's index object holds (written with `BlobStore.put_json`): enough to rebuild the blob row."""
    return {"digest": digest, "size": size, "key": key}


# The JSON `BlobStore.put_json` writes (sorted keys, no spaces): the fixed characters around the values. Digests, keys
# and tag names need no escaping, so an object's size is this plus the values' lengths (billing counts it set-based).
INDEX_JSON_OVERHEAD = len('{"digest":"","key":"","size":}')
TAG_JSON_OVERHEAD = len('{"digest":"","tag":""}')


def blob_index_size(digest: str, size: int, key: str) -> int:
    """The bytes of a blob's index object."""
    return INDEX_JSON_OVERHEAD + len(digest) + len(key) + len(str(size))


def tag_object_size(tag: str, digest: str) -> int:
    """The bytes of a tag's {tag, digest} object."""
    return TAG_JSON_OVERHEAD + len(digest) + len(tag)


def blob_index_prefix(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}index/blobs/"


def manifest_key(tenant_id: int, repository: str, digest: str) -> str:
    """The exact bytes of a manifest as pushed to one repository."""
    algo, hexpart = digest.split(":", 1)
    return _check(f"{tenant_prefix(tenant_id)}repos/{repository}/_manifests/{algo}/{hexpart}")


def tag_key(tenant_id: int, repository: str, tag: str) -> str:
    """JSON {tag, digest}. Tags may hold upper case, so the key's last component encodes the tag.

    Hex (the layout since the start) wherever the key fits; else lower-case base32 after
    `b32.`: a 128-character tag has 256 hex digits, more than a component may hold, and a long
    tag in a long repository name passes MAX_KEY in hex but not in base32 (at most 205 + 4).
    """
    base = f"{tenant_prefix(tenant_id)}repos/{repository}/_tags/"
    key = base + tag.encode().hex()
    if is_valid_key(key):
        return key
    return _check(base + _TAG_BASE32 + base64.b32encode(tag.encode()).decode().rstrip("=").lower())


def tag_from_key_name(name: str) -> str:
    """The tag a tag key's last component stands for (ValueError, binascii.Error included, if it encodes none)."""
    if name.startswith(_TAG_BASE32):
        encoded = name[len(_TAG_BASE32) :].upper()
        return base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
    return bytes.fromhex(name).decode()


def repos_prefix(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}repos/"
