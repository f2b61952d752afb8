"""Platform operators' writes on tenants: suspend, reactivate, set the storage quota (docs/decisions/0023).

Each locks the tenant's row, writes, and audits in one transaction. Suspending a suspended
tenant (or reactivating an active one) changes nothing and records nothing: both are safe to retry.
A tenant being deleted (status DELETING) is refused with Conflict by all three: reactivating it
would undo the deletion's first step, and a suspension or quota set on it would be lost with it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.locks import tenant_lock
from accounts.models import Tenant
from accounts.services import tenant_quota_set
from gateway.core.errors import Conflict, NotFound, ValidationError

MAX_REASON = Tenant._meta.get_field("suspension_reason").max_length or 500
# The reason billing suspends with (an unpaid subscription): the registry's refusal then says so, and
# billing lifts only a suspension with this reason (never one an operator made for another).
UNPAID_REASON = "unpaid: the subscription is suspended for non-payment"


def _locked(tenant: Tenant, *, verb: str) -> Tenant:
    """The tenant's row, locked; NotFound when it is gone, Conflict when it is being deleted."""
    locked = tenant_lock(pk=tenant.pk)
    if locked is None:
        raise NotFound(f"No tenant {tenant.slug!r}.")
    if locked.status == Tenant.Status.DELETING:
        raise Conflict(f"Tenant {locked.slug!r} is being deleted; it cannot be {verb}.")
    return locked


@transaction.atomic
def tenant_suspend(*, tenant: Tenant, reason: str, actor: str, ip: str | None = None) -> Tenant:
    """Suspend the tenant (its pulls go on, its pushes and deletes are refused); a no-op when it already is."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the tenant is suspended (the reason is kept with it and in the audit log).")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"The reason has at most {MAX_REASON} characters.")
    tenant = _locked(tenant, verb="suspended")
    if tenant.status == Tenant.Status.SUSPENDED:
        return tenant
    tenant.status, tenant.suspended_at, tenant.suspension_reason = Tenant.Status.SUSPENDED, timezone.now(), reason
    tenant.save(update_fields=["status", "suspended_at", "suspension_reason", "updated_at"])
    audit_record(action="tenant.suspend", actor=actor, tenant=tenant, target=tenant.slug, ip=ip, detail={"reason": reason})
    return tenant


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant, actor: str, ip: str | None = None) -> Tenant:
    """Lift the tenant's suspension; a no-op when it is active."""
    tenant = _locked(tenant, verb="reactivated")
    if tenant.status == Tenant.Status.ACTIVE:
        return tenant
    detail = {
        "reason": tenant.suspension_reason,
        "suspended_at": tenant.suspended_at.isoformat() if tenant.suspended_at else None,
    }
    tenant.status, tenant.suspended_at, tenant.suspension_reason = Tenant.Status.ACTIVE, None, ""
    tenant.save(update_fields=["status", "suspended_at", "suspension_reason", "updated_at"])
    audit_record(action="tenant.reactivate", actor=actor, tenant=tenant, target=tenant.slug, ip=ip, detail=detail)
    return tenant


@transaction.atomic
def tenant_quota_change(*, tenant: Tenant, storage_quota_bytes: int | None, actor: str, ip: str | None = None) -> Tenant:
    """An operator sets (or, with None, clears) the tenant's storage quota, through tenant_quota_set; audited."""
    tenant = _locked(tenant, verb="given a quota")
    before = tenant.storage_quota_bytes
    tenant_quota_set(tenant=tenant, storage_quota_bytes=storage_quota_bytes)
    audit_record(
        action="tenant.quota.set",
        actor=actor,
        tenant=tenant,
        target=tenant.slug,
        ip=ip,
        detail={"before": before, "after": storage_quota_bytes},
    )
    tenant.refresh_from_db()
    return tenant
