"""The periodic schedule (Celery beat): every periodic task, in one place, a comment on each.

Loaded by gateway/celery.py as `app.conf.beat_schedule`. Run exactly one beat process.
Each entry expires before its next run, so a backlog of runs does not pile up while no
worker is consuming.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every minute (crontab "* * * * *"): move buffered push/pull events from Redis into
    # PostgreSQL and bump last_pulled_at; the task re-queues itself while a backlog remains.
    "usage-flush": {
        "task": "gateway.usage.flush",
        "schedule": crontab(minute="*"),
        "options": {"expires": 55},
    },
}
