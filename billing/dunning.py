"""Dunning (docs/decisions/0045): a failed payment makes a subscription past_due (past_due_since recorded, by
billing.services.subscription_status_set); GATEWAY_BILLING_GRACE_DAYS later, still unpaid, the sweep suspends the
tenant as unpaid (pulls go on, pushes are refused saying why); paying at any point makes it active again.

A bank-transfer subscription whose period ended unpaid becomes past_due here too (nothing else would notice).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from billing import locks
from billing.conf import app_settings
from billing.models import Subscription
from billing.services import subscription_status_set

ACTOR = "billing.dunning"
BATCH = 500
Status = Subscription.Status


def subscription_grace_end(*, subscription: Subscription) -> datetime | None:
    """When the grace of a payment that failed ends (the sweep then suspends the tenant as unpaid); None: none failed."""
    if subscription.past_due_since is None:
        return None
    return subscription.past_due_since + app_settings.grace


def _due(**filters: object) -> list[int]:
    return list(Subscription.objects.filter(**filters).order_by("pk").values_list("tenant_id", flat=True)[:BATCH])


@transaction.atomic
def _step(*, tenant_id: int, status: str) -> bool:
    """Re-check the subscription under its lock (a payment may have arrived since it was listed), then move it."""
    now = timezone.now()
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    subscription = locks.subscription_lock(tenant=tenant) if tenant is not None else None
    if tenant is None or subscription is None:
        return False
    if status == Status.SUSPENDED:
        grace_end = subscription_grace_end(subscription=subscription)
        if subscription.status != Status.PAST_DUE or grace_end is None or grace_end > now:
            return False
    elif not (subscription.status in (Status.ACTIVE, Status.TRIALING) and subscription.current_period_end <= now):
        return False
    subscription_status_set(tenant=tenant, status=status, actor=ACTOR)
    return True


def dunning_sweep() -> dict[str, int]:
    """Lapsed bank-transfer periods → past_due; past_due past the grace period → suspended. Each subscription in its own
    transaction, re-checked under its lock; safe to run twice or concurrently; at most BATCH of each per run."""
    now = timezone.now()
    lapsed = _due(provider="manual", status__in=(Status.ACTIVE, Status.TRIALING), current_period_end__lte=now)
    overdue = _due(status=Status.PAST_DUE, past_due_since__lte=now - app_settings.grace)
    counts = {"past_due": 0, "suspended": 0}
    for tenant_id in lapsed:
        counts["past_due"] += _step(tenant_id=tenant_id, status=Status.PAST_DUE)
    for tenant_id in overdue:
        counts["suspended"] += _step(tenant_id=tenant_id, status=Status.SUSPENDED)
    return counts
