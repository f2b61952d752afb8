"""revoke_sessions USERNAME → JSON {"user", "refresh_tokens_revoked", "session_epoch"}: log a user out everywhere, now."""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.sessions import user_sessions_revoke


class Command(BaseCommand):
    help = (
        "Revoke all sessions of a user: their refresh tokens (`docker login`) at once, and registry bearer tokens "
        "already issued within 5 seconds. Passwords and personal access tokens keep working (revoke those separately)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        revoked = user_sessions_revoke(user=user, actor="system")
        self.stdout.write(
            json.dumps(
                {"user": user.username, "refresh_tokens_revoked": revoked.refresh_tokens, "session_epoch": revoked.session_epoch}
            )
        )
