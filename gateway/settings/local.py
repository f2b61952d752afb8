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
