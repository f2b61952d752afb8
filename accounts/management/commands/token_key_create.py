"""token_key_create → the new key's kid. The new key signs from now on (every process within seconds)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.token_keys import token_key_create
from gateway.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a new registry token signing key in GATEWAY_TOKEN_KEYS_DIR; it becomes the signing key. Prints its kid."

    def handle(self, *args, **options):
        try:
            kid = token_key_create()
        except (ApplicationError, ImproperlyConfigured, OSError) as exc:
            raise CommandError(getattr(exc, "message", None) or str(exc)) from None
        self.stdout.write(kid)
