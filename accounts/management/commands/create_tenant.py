"""create_tenant SLUG --owner USERNAME [--email E] [--password-stdin] → JSON {"tenant": ..., "owner": ...}."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.services import tenant_create, user_get_or_create
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
            user, user_created = user_get_or_create(username=owner, email=email, password=password)
            tenant = tenant_create(slug=slug, owner=user)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            json.dumps(
                {
                    "tenant": {"id": tenant.pk, "slug": tenant.slug},
                    "owner": {"id": user.pk, "username": user.username, "created": user_created},
                }
            )
        )
