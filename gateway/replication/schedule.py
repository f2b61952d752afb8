"""Periodic audit, replication and webhook work; merged into gateway/schedule.py (one line there).

Each entry expires before its next run and names its queue (audits and replication on "audit").
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from gateway.webhooks.schedule import WEBHOOK_SCHEDULE

REPLICATION_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every 10 minutes (crontab "*/10 * * * *"): HEAD the objects not checked for
    # GATEWAY_AUDIT_INTERVAL_HOURS (flagged first) in batches of GATEWAY_AUDIT_BATCH_SIZE,
    # re-hash a sample, repair and report. Objects come due a day after their last check,
    # so the checks spread over the day instead of one nightly burst.
    "integrity-audit": {
        "task": "gateway.integrity.audit",
        "schedule": crontab(minute="*/10"),
        "options": {"queue": "audit", "expires": 9 * 60},
    },
    # Every 5 minutes (crontab "2-59/5 * * * *", offset from the audit): backfill objects with
    # no replica row (opt-in of existing content, lost commit hooks), queue copies that are due
    # (backoff honoured), re-verify replicas not verified for a day, prune what GC removed.
    "replication-sweep": {
        "task": "gateway.replication.sweep",
        "schedule": crontab(minute="2-59/5"),
        "options": {"queue": "audit", "expires": 4 * 60},
    },
    **WEBHOOK_SCHEDULE,
}
