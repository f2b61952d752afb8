"""Reads of plans and subscriptions."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Tenant
from billing.models import Plan, Subscription


def plan_list(*, active_only: bool = False) -> QuerySet[Plan]:
    """Every plan (or only those open to new subscribers), cheapest first."""
    plans = Plan.objects.all()
    return plans.filter(is_active=True) if active_only else plans


def plan_get(*, code: str) -> Plan | None:
    """The plan with this code, or None."""
    return Plan.objects.filter(code=code).first()


def subscription_get(*, tenant: Tenant) -> Subscription | None:
    """The tenant's subscription with its plan, or None (no subscription: the tenant's limits are whatever was set)."""
    return Subscription.objects.select_related("plan").filter(tenant=tenant).first()
