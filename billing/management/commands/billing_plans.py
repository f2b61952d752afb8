"""billing_plans list | billing_plans set TENANT PLAN | billing_plans status TENANT STATUS → JSON.

`list` prints every plan with its price and limits (null = unlimited); `set` moves a tenant to a plan (starting a
subscription when it has none) and writes the plan's limits to it; `status` sets the subscription's status
(suspended: pushes refused as unpaid; active: that suspension lifted). Audited as "manage.py".
"""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.limits import LIMIT_FIELDS
from accounts.selectors import tenant_get_served
from billing.models import Plan, Subscription
from billing.selectors import plan_list
from billing.services import subscription_change_plan, subscription_status_set
from gateway.core.errors import ApplicationError

ACTOR = "manage.py"


def _plan_json(plan: Plan) -> dict:
    return {
        "code": plan.code,
        "name": plan.name,
        "monthly_price_minor": plan.monthly_price_minor,
        "currency": plan.currency,
        "active": plan.is_active,
        "limits": {name: getattr(plan, name) for name in LIMIT_FIELDS},
        "storage_overage_minor_per_gb": plan.storage_overage_minor_per_gb,
        "egress_overage_minor_per_gb": plan.egress_overage_minor_per_gb,
    }


def _subscription_json(subscription: Subscription) -> dict:
    return {
        "tenant": subscription.tenant.slug,
        "plan": subscription.plan.code,
        "status": subscription.status,
        "current_period_end": subscription.current_period_end.isoformat(),
    }


class Command(BaseCommand):
    help = "List the plans, set a tenant's plan, or set its subscription's status. Prints JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every plan with its price and limits")
        set_plan = sub.add_parser("set", help="move a tenant to a plan and write the plan's limits to it")
        set_plan.add_argument("tenant", help="tenant slug")
        set_plan.add_argument("plan", help="plan code (see `list`)")
        status = sub.add_parser("status", help="set a tenant's subscription status")
        status.add_argument("tenant", help="tenant slug")
        status.add_argument("status", choices=Subscription.Status.values)

    def handle(self, *args, action, **options):
        if action == "list":
            self.stdout.write(json.dumps({"plans": [_plan_json(p) for p in plan_list()]}))
            return
        tenant = tenant_get_served(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            if action == "set":
                subscription = subscription_change_plan(tenant=tenant, plan_code=options["plan"], actor=ACTOR)
            else:
                subscription = subscription_status_set(tenant=tenant, status=options["status"], actor=ACTOR)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        subscription.tenant = tenant
        self.stdout.write(json.dumps({"subscription": _subscription_json(subscription)}))
