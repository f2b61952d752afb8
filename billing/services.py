"""Plans and subscriptions: start, change plan, set status, edit a plan (docs/decisions/0039).

Billing owns the plan; the tenant's limits are a copy written through accounts.services.tenant_limits_set
in the same transaction as the change, so the registry and accounts read them without importing billing.
Every write locks in billing.locks' order (plan, subscriptions, then the tenant's row) and is audited.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.limits import LIMIT_FIELDS
from accounts.models import Tenant, User
from accounts.services import tenant_create, tenant_limits_set
from accounts.tenant_admin import UNPAID_REASON, tenant_reactivate, tenant_suspend
from billing import locks
from billing.conf import app_settings
from billing.models import Plan, Subscription, SubscriptionPlanInterval
from gateway.core.errors import Conflict, NotFound, ServiceUnavailable, ValidationError

# What staff may change on a plan (its code names it for good).
PLAN_EDITABLE = frozenset(
    {
        "name",
        "monthly_price_minor",
        "currency",
        "storage_overage_minor_per_gb",
        "egress_overage_minor_per_gb",
        "is_active",
        "stripe_price_id",
    }
    | set(LIMIT_FIELDS)
)
_PLAN_CODE = re.compile(r"[a-z0-9_-]{1,32}")


def _month_later(start: datetime) -> datetime:
    """The same instant a calendar month later (31 Jan → 28/29 Feb)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def _plan_for_subscribing(code: str) -> Plan:
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        raise NotFound(f"No plan {code!r}; `manage.py billing_plans list` shows the plans.")
    if not plan.is_active:
        raise ValidationError(f"Plan {code!r} takes no new subscribers; choose another plan.")
    return plan


@transaction.atomic
def subscription_start(
    *, tenant: Tenant, plan_code: str, status: str = Subscription.Status.ACTIVE, actor: str | None = None
) -> Subscription:
    """Subscribe a tenant that has no subscription to `plan_code` and write the plan's limits to it; audited."""
    if status not in Subscription.Status.values:
        raise ValidationError(f"Unknown status {status!r}; use one of {', '.join(Subscription.Status.values)}.")
    plan = _plan_for_subscribing(plan_code)
    if locks.subscription_lock(tenant=tenant) is not None:
        raise Conflict(f"Tenant {tenant.slug!r} already has a subscription; change its plan instead.")
    now = timezone.now()
    subscription = Subscription.objects.create(
        tenant=tenant, plan=plan, status=status, current_period_start=now, current_period_end=_month_later(now)
    )
    SubscriptionPlanInterval.objects.create(tenant=tenant, subscription=subscription, plan=plan, started_at=now)
    tenant_limits_set(tenant=tenant, limits=plan.limits())
    audit_record(
        action="subscription.start",
        actor=actor or SYSTEM_ACTOR,
        tenant=tenant,
        target=tenant.slug,
        detail={"plan": plan.code, "status": status},
    )
    return subscription


@transaction.atomic
def subscription_change_plan(*, tenant: Tenant, plan_code: str, actor: str) -> Subscription:
    """Move the tenant to `plan_code` (starting a subscription if it has none) and write its limits; locked; audited.

    Changing to the plan it is on changes and records nothing. A tenant already past a lower limit keeps
    what it has (nothing is deleted); only new repositories, members, robots and bytes are refused.
    """
    subscription = locks.subscription_lock(tenant=tenant)
    if subscription is None:
        return subscription_start(tenant=tenant, plan_code=plan_code, actor=actor)
    if subscription.plan.code == plan_code:
        return subscription
    plan = _plan_for_subscribing(plan_code)
    previous = subscription.plan.code
    subscription.plan = plan
    subscription.save(update_fields=["plan", "updated_at"])
    _plan_interval_switch(subscription=subscription, plan=plan, at=timezone.now())
    tenant_limits_set(tenant=tenant, limits=plan.limits())
    audit_record(
        action="subscription.plan",
        actor=actor,
        tenant=tenant,
        target=tenant.slug,
        detail={"plan": plan.code, "previous": previous},
    )
    return subscription


def _plan_interval_switch(*, subscription: Subscription, plan: Plan, at: datetime) -> None:
    """Close the open plan interval at `at` and open `plan`'s there (the subscription's row is locked by the caller).

    An interval that would end where it began (two changes at one instant) is re-pointed instead: it was never in force.
    """
    current = SubscriptionPlanInterval.objects.filter(subscription=subscription, ended_at__isnull=True).first()
    if current is not None and current.started_at >= at:
        current.plan = plan
        current.save(update_fields=["plan", "updated_at"])
        return
    if current is not None:
        current.ended_at = at
        current.save(update_fields=["ended_at", "updated_at"])
    SubscriptionPlanInterval.objects.create(tenant_id=subscription.tenant_id, subscription=subscription, plan=plan, started_at=at)


@transaction.atomic
def subscription_status_set(*, tenant: Tenant, status: str, actor: str) -> Subscription:
    """Set the subscription's status; `suspended` suspends the tenant as unpaid (pulls go on, pushes refused), `active`
    lifts that suspension (never one a platform operator made for another reason); locked; audited; idempotent.

    `past_due_since` (dunning's clock, decision 0045) is set when it first becomes past_due, kept while suspended,
    cleared by any other status."""
    if status not in Subscription.Status.values:
        raise ValidationError(f"Unknown status {status!r}; use one of {', '.join(Subscription.Status.values)}.")
    subscription = locks.subscription_lock(tenant=tenant)
    if subscription is None:
        raise NotFound(f"Tenant {tenant.slug!r} has no subscription.")
    previous = subscription.status
    if previous != status:
        subscription.status = status
        # Dunning's clock (decision 0045): starts when payment first fails, runs on through the suspension, stops when paid.
        if status == Subscription.Status.PAST_DUE and previous != Subscription.Status.SUSPENDED:
            subscription.past_due_since = subscription.past_due_since or timezone.now()
        elif status != Subscription.Status.SUSPENDED:
            subscription.past_due_since = None
        subscription.save(update_fields=["status", "past_due_since", "updated_at"])
        audit_record(
            action="subscription.status",
            actor=actor,
            tenant=tenant,
            target=tenant.slug,
            detail={"status": status, "previous": previous},
        )
    if status == Subscription.Status.SUSPENDED:
        tenant_suspend(tenant=tenant, reason=UNPAID_REASON, actor=actor)
    elif status == Subscription.Status.ACTIVE:
        current = Tenant.objects.filter(pk=tenant.pk).values_list("status", "suspension_reason").first()
        if current == (Tenant.Status.SUSPENDED, UNPAID_REASON):
            tenant_reactivate(tenant=tenant, actor=actor)
    return subscription


def _clean_plan_changes(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - PLAN_EDITABLE)
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(unknown)} of a plan; editable: {', '.join(sorted(PLAN_EDITABLE))}.")
    for name, value in changes.items():
        if name in LIMIT_FIELDS or name.endswith(("_minor", "_per_gb")):
            if value is None and name in LIMIT_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(
                    f"{name} must be a whole number ≥ 0{' or null (unlimited)' if name in LIMIT_FIELDS else ''}."
                )
    if "currency" in changes and not (isinstance(changes["currency"], str) and len(changes["currency"]) == 3):
        raise ValidationError("currency is a three-letter ISO 4217 code.")
    if "stripe_price_id" in changes:
        price = changes["stripe_price_id"]
        if not isinstance(price, str) or (price and not price.startswith("price_")) or len(price) > 255:
            raise ValidationError("stripe_price_id is a Stripe Price id (price_…), or empty when Stripe does not sell the plan.")
    return changes


@transaction.atomic
def plan_update(*, code: str, changes: dict[str, Any], actor: str) -> Plan:
    """Change a plan's fields and re-apply its limits to every tenant subscribed to it, in one transaction; locked; audited."""
    changes = _clean_plan_changes(changes)
    plan = locks.plan_lock(code=code)
    if plan is None:
        raise NotFound(f"No plan {code!r}.")
    price = changes.get("stripe_price_id")
    if price and Plan.objects.filter(stripe_price_id=price).exclude(pk=plan.pk).exists():
        raise Conflict(f"Another plan is already sold as Stripe price {price!r}.")
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.save()
    subscriptions = locks.subscriptions_of_plan_lock(plan=plan)
    limits = plan.limits()
    for subscription in subscriptions:
        tenant_limits_set(tenant=subscription.tenant, limits=limits)
    audit_record(
        action="plan.update",
        actor=actor,
        target=code,
        detail={"changes": changes, "tenants": len(subscriptions)},
    )
    return plan


@transaction.atomic
def plan_create(*, code: str, name: str, fields: dict[str, Any], actor: str) -> Plan:
    """Create a plan (a custom one for a customer, say) with `fields` of PLAN_EDITABLE; Conflict if the code is taken; audited."""
    if not code or not _PLAN_CODE.fullmatch(code):
        raise ValidationError("A plan code is 1-32 lower-case letters, digits, hyphens or underscores.")
    if not name.strip():
        raise ValidationError("A plan needs a name.")
    fields = _clean_plan_changes({k: v for k, v in fields.items() if k != "name"})
    plan, created = Plan.objects.get_or_create(code=code, defaults={"name": name.strip(), **fields})
    if not created:
        raise Conflict(f"A plan {code!r} exists already; change it instead (PATCH), codes name a plan for good.")
    audit_record(action="plan.create", actor=actor, target=code, detail={"name": plan.name, **fields})
    return plan


@transaction.atomic
def tenant_open(*, slug: str, owner: User, name: str = "", actor: str | None = None) -> Tenant:
    """Create a tenant (accounts.services.tenant_create) and subscribe it to GATEWAY_BILLING_DEFAULT_PLAN, if one is set,
    in one transaction: the faces create tenants through this, so no tenant of the hosted service is left without a plan."""
    tenant = tenant_create(slug=slug, owner=owner, name=name, actor=actor)
    code = app_settings.default_plan
    if code:
        if not Plan.objects.filter(code=code, is_active=True).exists():
            # An operator's mistake, not the user's: no tenant is created until the setting names a plan.
            raise ServiceUnavailable(
                f"Organisations cannot be created right now: the default plan {code!r} (GATEWAY_BILLING_DEFAULT_PLAN) "
                "does not exist or takes no subscribers; the operators have to fix the setting."
            )
        subscription_start(tenant=tenant, plan_code=code, actor=actor)
        tenant.refresh_from_db()
    return tenant
