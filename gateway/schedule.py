"""The periodic schedule (Celery beat): every periodic task, in one place, a comment on each.

Loaded by gateway/celery.py as `app.conf.beat_schedule`. Run exactly one beat process.
Each entry expires before its next run, so a backlog of runs does not pile up while no
worker is consuming.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every minute (crontab "* * * * *"): deliver the registry's buffered events from Redis to
    # their subscribers (usage rows and last_pulled_at, replication copies); the task re-queues
    # itself while a backlog remains. The name is from when it carried usage only.
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
    # Every 15 minutes (crontab "*/15 * * * *"): re-send deliveries left pending by a lost
    # message or a worker that died; each delivery still stops at GATEWAY_WEBHOOK_MAX_ATTEMPTS.
    "webhooks-sweep": {
        "task": "gateway.webhooks.sweep",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 14 * 60},
    },
    # Hourly at :27 (crontab "27 * * * *"): resume the purge of every tenant still `deleting`
    # (a lost message, or a run closed as abandoned); a purge another worker runs is left alone.
    "tenants-delete-resume": {
        "task": "gateway.tenants.delete_resume",
        "schedule": crontab(minute=27),
        "options": {"queue": "gc", "expires": 50 * 60},
    },
    # Daily at 23:52 UTC (crontab "52 23 * * *"): snapshot every tenant's stored, unique and shared
    # bytes as the day's figures (the dashboard's storage charts; nothing else records their history).
    # Late in the UTC day so each row says how the day ended; a re-run replaces that day's row.
    "usage-snapshot-all": {
        "task": "gateway.usage.snapshot_all",
        "schedule": crontab(minute=52, hour=23),
        "options": {"expires": 7 * 60},
    },
    # Hourly at :05 and again at :35 (crontab "5,35 * * * *"): sample every tenant's stored bytes as
    # the hour's storage byte-hours (billing/metering.py). Once per (tenant, hour): the :35 run writes
    # nothing where :05 succeeded, and catches the hours whose :05 run was lost (decision 0041).
    "billing-usage-sample-all": {
        "task": "billing.usage.sample_all",
        "schedule": crontab(minute="5,35"),
        "options": {"expires": 25 * 60},
    },
    # Daily at 03:23 UTC (crontab "23 3 * * *"): compare every tenant's metered storage with the
    # objects under its prefix in the bucket and record the day's StorageDrift (staff read it).
    "billing-storage-reconcile-all": {
        "task": "billing.storage.reconcile_all",
        "schedule": crontab(minute=23, hour=3),
        "options": {"expires": 23 * 3600},
    },
    # Hourly at :41 (crontab "41 * * * *"): dunning (billing/dunning.py, decision 0045). A subscription past_due
    # for GATEWAY_BILLING_GRACE_DAYS (7) is suspended as unpaid, within the hour its grace ends; lapsed bank-transfer
    # periods become past_due. Each subscription is re-checked under its lock, so a late or twin run is harmless.
    "billing-dunning-sweep": {
        "task": "billing.dunning.sweep",
        "schedule": crontab(minute=41),
        "options": {"expires": 50 * 60},
    },
    # Monthly, on the 1st at 01:13 UTC (crontab "13 1 1 * *"): generate and issue last month's invoice of
    # every tenant with a plan in it (billing/invoicing.py). After the month's last storage samples
    # (:05/:35 of 23:00) and event flushes; idempotent per (tenant, month), so a second or concurrent
    # run issues nothing new (decision 0044).
    "billing-invoices-issue-all": {
        "task": "billing.invoices.issue_all",
        "schedule": crontab(minute=13, hour=1, day_of_month=1),
        "options": {"expires": 23 * 3600},
    },
}
