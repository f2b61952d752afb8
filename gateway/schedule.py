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
    # Hourly at :17 (crontab "17 * * * *"): garbage collection, one chain per tenant on the "gc"
    # queue. GC deletes only what has been unreferenced for GATEWAY_GC_GRACE_SECONDS (24 h), so an
    # hourly run frees space about a day after it became garbage; runs are idempotent and resumable.
    "gc-all": {
        "task": "gateway.gc.all",
        "schedule": crontab(minute=17),
        "options": {"queue": "gc", "expires": 50 * 60},
    },
    # Daily at 02:47 (crontab "47 2 * * *"): apply retention policies (tag deletions); GC's next
    # runs reclaim the untagged manifests after the grace period.
    "retention-all": {
        "task": "gateway.retention.all",
        "schedule": crontab(minute=47, hour=2),
        "options": {"queue": "gc", "expires": 23 * 3600},
    },
    # Hourly at :37 (crontab "37 * * * *"): abort upload sessions idle past
    # GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS and multipart uploads no session owns (Storj bills them
    # until aborted and has no lifecycle rule to do it, docs/storj.md §8).
    "uploads-cleanup-all": {
        "task": "gateway.uploads.cleanup_all",
        "schedule": crontab(minute=37),
        "options": {"queue": "gc", "expires": 50 * 60},
    },
    # Every 10 minutes (crontab "4-59/10 * * * *"): close job runs (GC, retention, upload sweep,
    # audit, replication) whose worker died, i.e. no heartbeat for GATEWAY_JOB_STALE_SECONDS (30 min),
    # as failed ("abandoned"), so none shows `running` forever when no run of its kind follows.
    "jobs-close-stale": {
        "task": "gateway.jobs.close_stale",
        "schedule": crontab(minute="4-59/10"),
        "options": {"expires": 9 * 60},
    },
}

# Integrity audit, replication and webhook entries live with their app (gateway/replication/schedule.py).
from gateway.replication.schedule import REPLICATION_SCHEDULE  # noqa: E402
BEAT_SCHEDULE.update(REPLICATION_SCHEDULE)
