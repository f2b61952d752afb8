"""Tenant slugs: one DNS label (it becomes `<slug>.<REGISTRY_DOMAIN>`), not a reserved word."""

from __future__ import annotations

import re

from gateway.core.errors import ValidationError

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Names that are, or may become, our own host names or first path components under /v2/.
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "billing", "cdn", "console", "dashboard", "docs", "help",
        "healthz", "login", "logout", "mail", "metrics", "readyz", "registry", "root", "static", "status",
        "support", "system", "token", "v1", "v2", "wharf", "www", "library", "public", "internal", "localhost",
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
