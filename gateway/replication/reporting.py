"""Telling a tenant's admins: an audit-log event plus a webhook event, written in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Tenant
from accounts.services import SYSTEM_ACTOR, audit_record
from gateway.webhooks.services import webhook_event_emit


def problem_report(*, tenant: Tenant, action: str, event: str, target: str, detail: dict[str, Any], success: bool = False) -> int:
    """Record `action` in the tenant's audit log and emit webhook `event` (sent after commit). Returns webhooks queued."""
    with transaction.atomic():
        audit_record(action=action, actor=SYSTEM_ACTOR, tenant=tenant, target=target, success=success, detail=detail)
        return webhook_event_emit(tenant=tenant, event=event, data={"target": target, **detail})
