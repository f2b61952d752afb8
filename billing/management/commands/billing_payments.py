"""billing_payments requests | billing_payments paid TENANT [--bank-reference TEXT] → JSON (docs/decisions/0045).

For bank transfers (GATEWAY_BILLING_PROVIDER=manual): `requests` lists the open payment requests (the reference the
tenant quotes, plan, amount); `paid` marks the tenant's open request (or, with none, its next period) paid: the tenant
gets the plan for one period and is active again. Audited as "manage.py".
"""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import tenant_get_served
from billing.models import ManualPayment
from billing.payments.manual import manual_payment_mark_paid
from gateway.core.errors import ApplicationError

ACTOR = "manage.py"


def _payment_json(payment: ManualPayment) -> dict:
    return {
        "tenant": payment.tenant.slug,
        "reference": payment.reference,
        "plan": payment.plan.code,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "status": payment.status,
        "period_end": payment.period_end.isoformat() if payment.period_end else None,
    }


class Command(BaseCommand):
    help = "List open bank-transfer requests, or mark a tenant's payment received. Prints JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("requests", help="open payment requests, oldest first")
        paid = sub.add_parser("paid", help="a tenant's transfer arrived: activate it for one period of its plan")
        paid.add_argument("tenant", help="tenant slug")
        paid.add_argument("--bank-reference", default="", help="what the bank statement says (kept with the payment)")

    def handle(self, *args, action, **options):
        if action == "requests":
            rows = ManualPayment.objects.filter(status=ManualPayment.Status.REQUESTED).select_related("tenant", "plan")
            self.stdout.write(json.dumps({"requests": [_payment_json(p) for p in rows.order_by("created_at", "pk")]}))
            return
        tenant = tenant_get_served(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            payment = manual_payment_mark_paid(tenant=tenant, actor=ACTOR, bank_reference=options["bank_reference"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        payment.tenant = tenant
        self.stdout.write(json.dumps({"payment": _payment_json(payment)}))
