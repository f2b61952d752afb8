"""Typed access to the accounts app's settings (house style rule 33).

Values are read from django.conf.settings at each access, so `override_settings` in tests
and settings changed at start-up are always seen. Every name is defined in
gateway/settings/base.py (the token key directory in local/test/production).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


class AccountsSettings:
    @property
    def token_keys_dir(self) -> Path | None:
        value = getattr(settings, "GATEWAY_TOKEN_KEYS_DIR", None)
        return Path(value) if value else None

    @property
    def token_keys_autocreate(self) -> bool:
        """Generate a signing key when the directory has none (local and test settings only)."""
        return bool(getattr(settings, "GATEWAY_TOKEN_KEYS_AUTOCREATE", False))

    @property
    def token_issuer(self) -> str:
        return str(getattr(settings, "GATEWAY_TOKEN_ISSUER", "") or settings.EXTERNAL_URL)

    @property
    def token_ttl_seconds(self) -> int:
        return int(getattr(settings, "GATEWAY_TOKEN_TTL_SECONDS", 300))

    @property
    def refresh_token_days(self) -> int:
        return int(getattr(settings, "GATEWAY_REFRESH_TOKEN_DAYS", 30))

    @property
    def login_max_failures_account(self) -> int:
        return int(getattr(settings, "GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT", 10))

    @property
    def login_max_failures_ip(self) -> int:
        return int(getattr(settings, "GATEWAY_LOGIN_MAX_FAILURES_IP", 30))

    @property
    def login_window_seconds(self) -> int:
        return int(getattr(settings, "GATEWAY_LOGIN_WINDOW_SECONDS", 300))

    @property
    def invitation_days(self) -> int:
        return int(getattr(settings, "GATEWAY_INVITATION_DAYS", 7))

    @property
    def redis_url(self) -> str:
        return str(settings.REDIS_URL)


app_settings = AccountsSettings()
