"""Shared by the replication management commands: tenant lookup, JSON output, error mapping."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from accounts.models import Tenant


def tenant_or_error(slug: str | None) -> Tenant | None:
    """The tenant named by --tenant (None when not given); CommandError when it does not exist."""
    if slug is None:
        return None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {slug!r}")
    return tenant


def fraction(value: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        n = float(value)
    except ValueError:
        raise CommandError(f"expected a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= n <= 1.0:
        raise CommandError(f"expected a number from 0 to 1, got {value!r}")
    return n


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str)
