"""Periodic webhook work, merged into gateway/schedule.py through gateway/replication/schedule.py."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

WEBHOOK_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every 15 minutes (crontab "*/15 * * * *"): re-send deliveries left pending by a lost
    # message or a worker that died; each delivery still stops at GATEWAY_WEBHOOK_MAX_ATTEMPTS.
    "webhooks-sweep": {
        "task": "gateway.webhooks.sweep",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 14 * 60},
    },
}
