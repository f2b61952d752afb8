"""Lock querysets of billing (house style rule 5).

Lock order: the Plan row, then Subscription rows (pk order), then the tenant's row (taken by
accounts.services.tenant_limits_set's UPDATE or accounts.tenant_admin's tenant_lock).
"""

from __future__ import annotations

from accounts.models import Tenant
from billing.models import Plan, Subscription


def plan_lock(*, code: str) -> Plan | None:
    """The plan with this code, FOR NO KEY UPDATE, or None."""
    return Plan.objects.select_for_update(no_key=True).filter(code=code).order_by("pk").first()


def subscription_lock(*, tenant: Tenant) -> Subscription | None:
    """The tenant's subscription with its plan, FOR NO KEY UPDATE (of the subscription only), or None."""
    return (
        Subscription.objects.select_for_update(no_key=True, of=("self",))
        .select_related("plan")
        .filter(tenant=tenant)
        .order_by("pk")
        .first()
    )


def subscriptions_of_plan_lock(*, plan: Plan) -> list[Subscription]:
    """Every subscription to `plan` with its tenant, FOR NO KEY UPDATE, in pk order."""
    return list(
        Subscription.objects.select_for_update(no_key=True, of=("self",))
        .select_related("tenant")
        .filter(plan=plan)
        .order_by("pk")
    )
