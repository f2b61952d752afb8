"""Manifest media types and the structural checks a manifest must pass before it is stored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.registry.digests import parse_digest
from gateway.registry.errors import DigestInvalid, ManifestInvalid, PayloadTooLarge

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES
GENERIC_TYPES = ("", "application/json", "application/octet-stream")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # nesting of JSON objects and arrays; a real manifest needs 4
MAX_TYPE_LENGTH = 255  # media types and artifactType: the width of their columns
MAX_SIZE = 2**63 - 1  # descriptor sizes: PostgreSQL's bigint
# Text PostgreSQL cannot store (text and jsonb reject NUL; jsonb rejects lone surrogates), also refused by I-JSON (RFC 7493).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_MESSAGE = "manifest JSON holds a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff)"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    foreign: bool = False  # has `urls`: a non-distributable layer that may live elsewhere


@dataclass
class ParsedManifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)  # config + layers
    children: list[Descriptor] = field(default_factory=list)  # index entries
    subject: Descriptor | None = None
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type or len(media_type) > MAX_TYPE_LENGTH:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string of at most {MAX_TYPE_LENGTH} characters")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest must be a string")
    try:
        parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}.digest: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ManifestInvalid(f"{where}.size must be a non-negative 64-bit integer")
    urls = obj.get("urls")
    if urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise ManifestInvalid(f"{where}.urls must be a list of strings")
    return Descriptor(media_type=media_type, digest=digest, size=size, foreign=bool(urls))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:  # readers disagree on which value wins: the same bytes would mean different manifests
            raise ManifestInvalid(f"duplicate JSON key {key[:100]!r}")
        doc[key] = value
    return doc


def _check_tree(doc: Any) -> None:
    """Nesting within MAX_DEPTH, and no string or key PostgreSQL could not store (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise ManifestInvalid(f"manifest JSON is nested more than {MAX_DEPTH} levels deep")
            items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
            for key, value in items:
                if key is not None and _UNSTORABLE.search(key):
                    raise ManifestInvalid(_UNSTORABLE_MESSAGE, detail={"key": key[:100]})
                stack.append((value, depth + 1))
        elif isinstance(node, str) and _UNSTORABLE.search(node):
            raise ManifestInvalid(_UNSTORABLE_MESSAGE)


def _load(payload: bytes) -> Any:
    """Strict JSON: UTF-8 without a byte-order mark, unique keys, bounded nesting, storable strings."""
    if payload.startswith(b"\xef\xbb\xbf"):
        raise ManifestInvalid("manifest starts with a byte-order mark; send UTF-8 JSON without one")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestInvalid("manifest is not UTF-8 (UTF-16 and UTF-32 are not accepted)") from None
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ManifestInvalid(f"manifest JSON is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and ints longer than Python converts
        raise ManifestInvalid(f"manifest is not valid JSON: {str(exc)[:200]}") from None
    _check_tree(doc)
    return doc


def manifest_size_check(size: int) -> None:
    """The one size rule of a manifest: 1 to MAX_MANIFEST_BYTES bytes (413 above, MANIFEST_INVALID when empty)."""
    if size > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge(f"manifest is over the {MAX_MANIFEST_BYTES}-byte limit")
    if size <= 0:
        raise ManifestInvalid("empty manifest")


def parse_manifest(payload: bytes, content_type: str) -> ParsedManifest:
    """Check the JSON and its structure; return what it references. Raises MANIFEST_INVALID; the size is manifest_size_check's."""
    doc = _load(payload)
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    content_type = (content_type or "").split(";")[0].strip().lower()
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    if content_type in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestInvalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    media_type = content_type if content_type not in GENERIC_TYPES else (declared or "")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if declared and declared != media_type:
        raise ManifestInvalid(f"Content-Type {media_type!r} does not match the manifest's mediaType {declared!r}")
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    parsed = ParsedManifest(media_type=media_type)
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise ManifestInvalid("annotations must map strings to strings")
    parsed.annotations = annotations
    artifact_type = doc.get("artifactType", "")
    if not isinstance(artifact_type, str) or len(artifact_type) > MAX_TYPE_LENGTH:
        raise ManifestInvalid(f"artifactType must be a string of at most {MAX_TYPE_LENGTH} characters")
    if "subject" in doc and doc["subject"] is not None:
        parsed.subject = _descriptor(doc["subject"], "subject")
    if media_type in IMAGE_TYPES:
        if "config" not in doc:
            raise ManifestInvalid("an image manifest needs a config descriptor")
        config = _descriptor(doc["config"], "config")
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise ManifestInvalid("layers must be a list")
        if media_type == DOCKER_MANIFEST and not layers:
            raise ManifestInvalid("a Docker image manifest needs at least one layer")
        parsed.blobs = [config] + [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
        parsed.artifact_type = artifact_type or config.media_type
    else:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalid("an index needs a manifests list")
        parsed.children = [_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)]
        parsed.artifact_type = artifact_type
    return parsed


def accepts(accept_header: str, media_type: str) -> bool:
    """Whether a client's Accept header admits this manifest type (no header: yes)."""
    if not accept_header.strip():
        return True
    offered = {part.split(";")[0].strip().lower() for part in accept_header.split(",")}
    if media_type in offered or "*/*" in offered or "application/*" in offered:
        return True
    # Clients that accept an image manifest type but not the other (Docker vs OCI) still
    # get what is stored: the bytes must not change, and every current client handles both.
    return any(media_type in family and offered & set(family) for family in (IMAGE_TYPES, INDEX_TYPES))
