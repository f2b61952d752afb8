"""Validation of tenant slugs (one DNS label, not reserved), robot names and repository patterns."""

from __future__ import annotations

import re

from gateway.core.errors import ValidationError

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Names that are, or may become, our own host names or first path components under /v2/.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "billing",
        "cdn",
        "console",
        "dashboard",
        "docs",
        "help",
        "healthz",
        "login",
        "logout",
        "mail",
        "metrics",
        "readyz",
        "registry",
        "root",
        "static",
        "status",
        "support",
        "system",
        "token",
        "v1",
        "v2",
        "wharf",
        "www",
        "library",
        "public",
        "internal",
        "localhost",
        "new",  # /orgs/new/ is the dashboard's "create an organisation" page
    }
)


def validate_tenant_slug(slug: str) -> str:
    """Return the slug if valid; raise ValidationError saying why not."""
    if not isinstance(slug, str) or not slug:
        raise ValidationError("A tenant slug is required.")
    if len(slug) < 2 or len(slug) > 63:
        raise ValidationError(f"Tenant slug {slug!r} must be 2 to 63 characters long.")
    if not SLUG_RE.match(slug):
        raise ValidationError(
            f"Tenant slug {slug!r} must be a DNS label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit."
        )
    if "--" in slug[2:4]:
        raise ValidationError(f"Tenant slug {slug!r} may not have '--' in positions 3-4 (reserved for IDNs).")
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"Tenant slug {slug!r} is reserved.")
    return slug


ROBOT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Repository names are lower-case [a-z0-9._-] separated by "/"; patterns add fnmatch's * ? [ ] !.
REPOSITORY_PATTERN_RE = re.compile(r"^[a-z0-9._\-/*?\[\]!]+$")
MAX_REPOSITORY_PATTERNS = 50


def validate_robot_name(name: str) -> str:
    """Return the robot name if valid; raise ValidationError saying why not."""
    if not isinstance(name, str) or not name:
        raise ValidationError("A robot name is required.")
    if not ROBOT_NAME_RE.match(name):
        raise ValidationError(
            f"Robot name {name!r} must be 1 to 63 characters: lower-case letters, digits, '_' and '-', "
            "starting with a letter or digit."
        )
    return name


def validate_repository_patterns(patterns: list[str] | tuple[str, ...]) -> list[str]:
    """Clean repository glob patterns (fnmatch-style, e.g. "team/*"): stripped, de-duplicated, in order."""
    if isinstance(patterns, str):
        raise ValidationError("Repository patterns must be a list, not a string.")
    clean: list[str] = []
    for raw in patterns:
        if not isinstance(raw, str):
            raise ValidationError(f"Repository pattern {raw!r} must be a string.")
        pattern = raw.strip()
        if not pattern or len(pattern) > 255:
            raise ValidationError(f"Repository pattern {raw!r} must be 1 to 255 characters.")
        if not REPOSITORY_PATTERN_RE.match(pattern):
            raise ValidationError(
                f"Repository pattern {pattern!r} may hold only lower-case letters, digits, '.', '_', '-', '/' "
                "and the wildcards * ? [ ] !"
            )
        if pattern.startswith("/") or pattern.endswith("/") or "//" in pattern:
            raise ValidationError(f"Repository pattern {pattern!r} has an empty path component.")
        if pattern not in clean:
            clean.append(pattern)
    if len(clean) > MAX_REPOSITORY_PATTERNS:
        raise ValidationError(f"At most {MAX_REPOSITORY_PATTERNS} repository patterns are allowed.")
    return clean
