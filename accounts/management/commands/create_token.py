"""create_token USERNAME [--name N] [--scopes pull,push,delete,api:read,api:write,admin] [--repos PATTERN] [--expires-days D] → the secret alone."""

from django.core.management.base import BaseCommand, CommandError

from accounts.management.options import add_grant_arguments, grant_issue
from accounts.models import User
from accounts.services import REGISTRY_SCOPES, access_token_issue


class Command(BaseCommand):
    help = "Issue a personal access token for a user and print the secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        add_grant_arguments(parser, who="token", scopes_default=",".join(REGISTRY_SCOPES))

    def handle(self, *args, username, name, scopes, repos, expires_days, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        self.stdout.write(
            grant_issue(access_token_issue, user=user, name=name, scopes=scopes, repos=repos, expires_days=expires_days)
        )
