"""Development: `make run` and `manage.py` on a developer's machine."""

import secrets

from gateway.settings.base import *  # noqa: F403
from gateway.settings.base import VAR_DIR

DEBUG = E.boolean("DJANGO_DEBUG", True)  # noqa: F405

if not SECRET_KEY:  # noqa: F405
    # A per-checkout key kept under var/, so sessions survive restarts without a configured secret.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

# Token signing keys: var/token-keys unless configured; a key is generated on first use.
if GATEWAY_TOKEN_KEYS_DIR is None:  # noqa: F405
    GATEWAY_TOKEN_KEYS_DIR = VAR_DIR / "token-keys"
GATEWAY_TOKEN_KEYS_AUTOCREATE = True

# Secrets at rest: a fixed dev-only key unless configured (production requires its own).
if not GATEWAY_ENCRYPTION_KEY:  # noqa: F405
    GATEWAY_ENCRYPTION_KEY = "wharf-local-development-only-encryption-key"
# Webhooks and replication targets on this machine or its network are fine here (netpolicy).
GATEWAY_OUTBOUND_ALLOW_PRIVATE = E.boolean("GATEWAY_OUTBOUND_ALLOW_PRIVATE", True)  # noqa: F405
# Mails (invitations) go to the log unless an SMTP server is configured.
EMAIL_BACKEND = E.string("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")  # noqa: F405
# WebAuthn on http://localhost during development (production requires https).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
