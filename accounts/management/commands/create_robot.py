"""create_robot TENANT NAME --scopes pull[,push[,delete]] [--repos PATTERN ...] [--expires-days D] → the secret alone.

The robot logs in as `<TENANT>+<NAME>` with the printed secret (shown only this once).
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.management.options import add_grant_arguments, grant_issue
from accounts.models import Tenant
from accounts.services import robot_create


class Command(BaseCommand):
    help = "Create a robot account in a tenant and print its secret (shown only this once). It logs in as TENANT+NAME."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("name", help="robot name: [a-z0-9][a-z0-9_-]{0,62}")
        add_grant_arguments(parser, who="robot", scopes_default=None)

    def handle(self, *args, tenant, name, scopes, repos, expires_days, **options):
        tenant_row = Tenant.objects.filter(slug=tenant).first()
        if tenant_row is None:
            raise CommandError(f"No tenant {tenant!r}.")
        self.stdout.write(
            grant_issue(robot_create, tenant=tenant_row, name=name, scopes=scopes, repos=repos, expires_days=expires_days)
        )
