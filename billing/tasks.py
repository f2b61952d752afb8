"""Billing's Celery tasks. Thin: each calls one service; services are imported inside the bodies (decision 0041)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError

from gateway.core.tasking import task
from gateway.storage import StorageUnavailable

FANOUT_BATCH = 500


def _fan_out(fanout: Any, per_tenant: Any, after_id: int, **kwargs: Any) -> int:
    from gateway.registry.services.gc import gc_tenant_ids

    ids = gc_tenant_ids(after_id=after_id, limit=FANOUT_BATCH)
    for tenant_id in ids:
        per_tenant.apply_async(kwargs={"tenant_id": tenant_id, **kwargs})
    if len(ids) == FANOUT_BATCH:
        fanout.apply_async(kwargs={"after_id": ids[-1], **kwargs})
    return len(ids)


@task(name="billing.usage.sample_all", retry_on=(DatabaseError,))
def usage_sample_all_task(*, after_id: int = 0, hour: str = "") -> int:
    """Queue this hour's storage sample of every tenant not being deleted (the hour fixed now, so late runs sample it)."""
    from billing.metering import hour_of

    hour = hour or hour_of(datetime.now(UTC)).isoformat()
    return _fan_out(usage_sample_all_task, usage_sample_task, after_id, hour=hour)


@task(name="billing.usage.sample", retry_on=(DatabaseError,))
def usage_sample_task(*, tenant_id: int, hour: str) -> bool | None:
    """Sample the tenant's stored bytes for `hour` (ISO 8601); once per (tenant, hour): a retry or a twin run writes nothing."""
    from billing.metering import usage_storage_sample_by_id

    return usage_storage_sample_by_id(tenant_id=tenant_id, hour=datetime.fromisoformat(hour))


@task(name="billing.storage.reconcile_all", retry_on=(DatabaseError,))
def storage_reconcile_all_task(*, after_id: int = 0) -> int:
    """Queue today's storage reconciliation of every tenant not being deleted."""
    return _fan_out(storage_reconcile_all_task, storage_reconcile_task, after_id)


@task(name="billing.storage.reconcile", retry_on=(DatabaseError, StorageUnavailable))
def storage_reconcile_task(*, tenant_id: int) -> int | None:
    """Record today's StorageDrift of the tenant (idempotent: a re-run replaces the day); returns the difference in bytes."""
    from billing.reconciliation import storage_reconcile_by_id

    drift = storage_reconcile_by_id(tenant_id=tenant_id)
    return drift.difference_bytes if drift is not None else None


@task(name="billing.dunning.sweep", retry_on=(DatabaseError,))
def dunning_sweep_task() -> dict[str, int]:
    """Suspend, as unpaid, subscriptions past_due for longer than the grace period (and mark lapsed bank transfers
    past_due); each re-checked under its lock, so a twin run or a payment arriving meanwhile changes nothing twice."""
    from billing.dunning import dunning_sweep

    return dunning_sweep()


@task(name="billing.invoices.issue_all", retry_on=(DatabaseError,))
def invoice_issue_all_task(*, after_id: int = 0, period_start: str = "") -> int:
    """Queue the issue of the month's invoice (last month's by default, fixed now) for every tenant with a plan in it."""
    from billing.invoicing import invoice_tenant_ids, previous_month

    period = datetime.fromisoformat(period_start) if period_start else previous_month(datetime.now(UTC))
    ids = invoice_tenant_ids(period_start=period, after_id=after_id, limit=FANOUT_BATCH)
    for tenant_id in ids:
        invoice_issue_task.apply_async(kwargs={"tenant_id": tenant_id, "period_start": period.isoformat()})
    if len(ids) == FANOUT_BATCH:
        invoice_issue_all_task.apply_async(kwargs={"after_id": ids[-1], "period_start": period.isoformat()})
    return len(ids)


@task(name="billing.invoices.issue", retry_on=(DatabaseError,))
def invoice_issue_task(*, tenant_id: int, period_start: str) -> str | None:
    """Generate and issue the tenant's invoice for the month (idempotent: twice or concurrently, one invoice); its number."""
    from billing.invoicing import invoice_issue_by_id

    invoice = invoice_issue_by_id(tenant_id=tenant_id, period_start=datetime.fromisoformat(period_start))
    return invoice.number if invoice is not None else None
