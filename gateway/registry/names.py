"""Repository names and tags, by the distribution spec's grammar."""

from __future__ import annotations

import re

from gateway.registry.errors import ManifestInvalid, NameInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME = 255


def validate_repository_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not REPOSITORY_RE.match(name):
        raise NameInvalid(
            f"invalid repository name {name[:100]!r}: lower-case alphanumeric path components separated by '/', "
            "with '.', '_', '__' or '-' between alphanumerics",
            detail={"name": name[:300]},
        )
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag or ""):
        raise ManifestInvalid(
            f"invalid tag {tag[:100]!r}: at most 128 of [A-Za-z0-9_.-], not starting with '.' or '-'", detail={"tag": tag[:200]}
        )
    return tag
