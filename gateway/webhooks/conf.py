"""Typed access to the webhooks app's settings (house style rule 33), read at each access."""

from __future__ import annotations

from django.conf import settings


class WebhooksSettings:
    @property
    def timeout_seconds(self) -> int:
        return int(getattr(settings, "GATEWAY_WEBHOOK_TIMEOUT_SECONDS", 10))

    @property
    def max_attempts(self) -> int:
        return int(getattr(settings, "GATEWAY_WEBHOOK_MAX_ATTEMPTS", 8))


app_settings = WebhooksSettings()
