"""token_key_retire [--] KID: delete that signing key; tokens it signed stop verifying. Refuses the only key.

Keys we generate have kids that never start with '-'; for one that does (a key made elsewhere),
end the options first: `token_key_retire -- -KID`.
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.token_keys import token_key_list, token_key_retire
from gateway.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Retire (delete) a registry token signing key by kid. Wait out the token lifetime after creating its successor."

    def add_arguments(self, parser):
        parser.add_argument("kid", help="the key id (token_key_list); put `--` before one that starts with '-'")

    def handle(self, *args, kid, **options):
        try:
            was_signing = any(k.kid == kid and k.signing for k in token_key_list())
            token_key_retire(kid=kid)
            signing = [k.kid for k in token_key_list() if k.signing]
        except (ApplicationError, ImproperlyConfigured, OSError) as exc:
            raise CommandError(getattr(exc, "message", None) or str(exc)) from None
        if was_signing:
            self.stderr.write(f"{kid} was the signing key; {signing[0]} signs now.")
        self.stdout.write(f"retired {kid}")
