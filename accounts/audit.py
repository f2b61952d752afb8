"""The audit log's one write: append an event (callers import it from here or, as before, from accounts.services)."""

from __future__ import annotations

import ipaddress
from typing import Any

from accounts.models import AuditEvent, Tenant

SYSTEM_ACTOR = "system"


def audit_record(
    *,
    action: str,
    actor: str,
    tenant: Tenant | None = None,
    target: str = "",
    ip: str | None = None,
    user_agent: str = "",
    success: bool = True,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit event; a plain insert inside the caller's transaction (it rolls back with it)."""
    action = (action or "").strip()
    if not action or len(action) > 64:
        raise ValueError(f"An audit action of 1 to 64 characters is required, got {action!r}.")
    try:
        clean_ip: str | None = str(ipaddress.ip_address((ip or "").strip())) if ip else None
    except ValueError:
        clean_ip = None  # e.g. "unknown" or a mangled X-Forwarded-For: an inet column would refuse it
    AuditEvent.objects.create(
        tenant=tenant,
        actor=_scrub(actor or SYSTEM_ACTOR)[:200],
        action=action,
        target=_scrub(target or "")[:500],
        ip=clean_ip,
        user_agent=_scrub(user_agent or "")[:300],
        success=bool(success),
        detail=_scrub(detail or {}),
    )


def _scrub(value: Any) -> Any:
    """`value` with NUL characters replaced: PostgreSQL text and jsonb refuse them, and callers record what clients sent."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value
