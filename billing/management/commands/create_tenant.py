"""create_tenant SLUG --owner USERNAME [--email E] [--password-stdin] → JSON {"tenant": ..., "owner": ...}.

In billing (not accounts) because a new tenant gets GATEWAY_BILLING_DEFAULT_PLAN in the same transaction
(billing.services.tenant_open), and accounts never imports billing."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import user_get_or_create
from billing.selectors import subscription_get
from billing.services import tenant_open
from gateway.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a tenant and, if missing, its owner user. Prints JSON."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="username of the owner (created when missing)")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-stdin", action="store_true", help="read the new owner's password from stdin")

    def handle(self, *args, slug, owner, email, password_stdin, **options):
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin given but no password was read from stdin.")
        try:
            with transaction.atomic():
                user, user_created = user_get_or_create(username=owner, email=email, password=password)
                tenant = tenant_open(slug=slug, owner=user)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        subscription = subscription_get(tenant=tenant)
        plan = subscription.plan.code if subscription else None
        self.stdout.write(
            json.dumps(
                {
                    "tenant": {"id": tenant.pk, "slug": tenant.slug, "plan": plan},
                    "owner": {"id": user.pk, "username": user.username, "created": user_created},
                }
            )
        )
