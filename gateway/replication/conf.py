"""Typed access to the audit and replication settings (house style rule 33), read at each access.

Every name is defined, parsed and documented in gateway/settings/base.py and .env.example.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


class ReplicationSettings:
    @property
    def audit_interval(self) -> timedelta:
        """How often each object is HEADed."""
        return timedelta(hours=int(getattr(settings, "GATEWAY_AUDIT_INTERVAL_HOURS", 24)))

    @property
    def audit_batch_size(self) -> int:
        return int(getattr(settings, "GATEWAY_AUDIT_BATCH_SIZE", 500))

    @property
    def audit_max_requeues(self) -> int:
        return int(getattr(settings, "GATEWAY_AUDIT_MAX_REQUEUES", 20))

    @property
    def audit_sample_rate(self) -> float:
        return float(getattr(settings, "GATEWAY_AUDIT_SAMPLE_RATE", 0.001))

    @property
    def audit_deep_bytes_per_run(self) -> int:
        return int(getattr(settings, "GATEWAY_AUDIT_DEEP_BYTES_PER_RUN", 1024**3))

    @property
    def job_requests_per_second(self) -> int:
        return int(getattr(settings, "GATEWAY_JOB_S3_REQUESTS_PER_SECOND", 25))

    @property
    def job_stale_after(self) -> timedelta:
        """A running JobRun without a heartbeat this long is closed as abandoned."""
        return timedelta(seconds=int(getattr(settings, "GATEWAY_JOB_STALE_SECONDS", 1800)))

    @property
    def replication_batch_size(self) -> int:
        return int(getattr(settings, "GATEWAY_REPLICATION_BATCH_SIZE", 500))

    @property
    def replication_max_attempts(self) -> int:
        return int(getattr(settings, "GATEWAY_REPLICATION_MAX_ATTEMPTS", 10))

    @property
    def replication_lag_alert(self) -> timedelta:
        return timedelta(seconds=int(getattr(settings, "GATEWAY_REPLICATION_LAG_ALERT_SECONDS", 3600)))


app_settings = ReplicationSettings()
