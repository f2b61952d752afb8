"""Writes to a tenant's own settings and its lifecycle (creating it is accounts.services.tenant_create)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.models import Tenant
from gateway.core.errors import ValidationError
from gateway.core.models import changes_save

MAX_NAME = 200


@transaction.atomic
def tenant_update(
    *, tenant: Tenant, name: str | None = None, redirect_blob_downloads: bool | None = None, actor: str | None = None
) -> Tenant:
    """Change a tenant's display name and download mode (None: unchanged); audited when something changed.

    The caller holds the tenant's row lock (accounts.locks.tenant_lock) when it compared a version first.
    """
    changes: dict[str, object] = {}
    if name is not None:
        clean = name.strip()
        if not clean or len(clean) > MAX_NAME or "\x00" in clean:
            raise ValidationError(f"A display name of 1 to {MAX_NAME} characters is required.")
        changes["name"] = clean
    if redirect_blob_downloads is not None:
        changes["redirect_blob_downloads"] = bool(redirect_blob_downloads)
    changes = changes_save(tenant, changes)
    if changes:
        audit_record(action="tenant.update", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=tenant.slug, detail=changes)
    return tenant


def tenant_deleting_mark(*, tenant: Tenant, actor: str | None = None) -> bool:
    """Mark the tenant deleting (a conditional UPDATE; False when it already was); audited. Call inside the transaction that queues the purge."""
    now = timezone.now()
    marked = (
        Tenant.objects.filter(pk=tenant.pk)
        .exclude(status=Tenant.Status.DELETING)
        .update(status=Tenant.Status.DELETING, updated_at=now)
    )
    if marked:
        previous = tenant.status
        tenant.status, tenant.updated_at = Tenant.Status.DELETING, now
        audit_record(
            action="tenant.delete", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=tenant.slug, detail={"previous": previous}
        )
    return bool(marked)
