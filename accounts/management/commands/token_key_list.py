"""token_key_list → JSON [{"kid": ..., "file": ..., "signing": true|false}, ...], oldest first."""

import json

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.token_keys import token_key_list


class Command(BaseCommand):
    help = "List the registry token signing keys in GATEWAY_TOKEN_KEYS_DIR as JSON (the newest signs, all verify)."

    def handle(self, *args, **options):
        try:
            keys = token_key_list()
        except (ImproperlyConfigured, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps([{"kid": k.kid, "file": str(k.path), "signing": k.signing} for k in keys], indent=2))
