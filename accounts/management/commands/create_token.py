"""create_token USERNAME [--name N] [--scopes pull,push,delete] [--repos PATTERN] [--expires-days D] → the secret alone."""

from django.core.management.base import BaseCommand, CommandError

from accounts.management.options import add_grant_arguments, split_list
from accounts.models import User
from accounts.services import ALL_SCOPES, access_token_issue
from gateway.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Issue a personal access token for a user and print the secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        add_grant_arguments(parser, who="token", scopes_default=",".join(ALL_SCOPES))

    def handle(self, *args, username, name, scopes, repos, expires_days, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        try:
            issued = access_token_issue(
                user=user,
                name=name,
                scopes=split_list([scopes]),
                repositories=split_list(repos),
                expires_in_days=expires_days,
                actor="system",
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(issued.secret)
