"""A job left `running` by a dead worker is closed by the periodic task, whatever its kind, even with no later run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.registry.models import JobRun
from gateway.tasks import jobruns_close_stale_task

pytestmark = pytest.mark.django_db


def _running(kind: str, tenant, *, idle: timedelta) -> JobRun:
    run = JobRun.objects.create(kind=kind, tenant=tenant, errors=[{"error": "one batch failed earlier"}])
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - idle)
    return run


def test_runs_without_a_heartbeat_are_closed_and_live_ones_left_alone(tenant, settings):
    settings.GATEWAY_JOB_STALE_SECONDS = 1800
    dead = [_running(kind, tenant, idle=timedelta(minutes=31)) for kind in ("audit", "replication", "gc", "retention", "uploads")]
    live = _running("audit", tenant, idle=timedelta(minutes=29))
    done = JobRun.objects.create(kind="gc", tenant=tenant, state=JobRun.State.SUCCEEDED, finished_at=timezone.now())
    JobRun.objects.filter(pk=done.pk).update(heartbeat_at=timezone.now() - timedelta(days=2))

    assert jobruns_close_stale_task() == 5  # called as beat would, through the task
    for run in dead:
        run.refresh_from_db()
        assert run.state == JobRun.State.FAILED and run.finished_at
        assert run.errors[0] == {"error": "one batch failed earlier"} and run.errors[-1]["error"].startswith(
            "abandoned: no heartbeat"
        )
    live.refresh_from_db()
    done.refresh_from_db()
    assert live.state == JobRun.State.RUNNING and live.finished_at is None
    assert done.state == JobRun.State.SUCCEEDED and done.errors == []
    assert jobruns_close_stale_task() == 0  # idempotent


def test_the_ttl_is_a_setting(tenant, settings):
    run = _running("audit", tenant, idle=timedelta(minutes=5))
    assert jobruns_close_stale_task() == 0
    settings.GATEWAY_JOB_STALE_SECONDS = 120
    assert jobruns_close_stale_task() == 1
    run.refresh_from_db()
    assert run.state == JobRun.State.FAILED


def test_beat_runs_it_every_ten_minutes():
    from gateway.celery import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["jobs-close-stale"]
    assert entry["task"] == jobruns_close_stale_task.name == "gateway.jobs.close_stale" and entry["task"] in app.tasks
    assert entry["schedule"].minute == set(range(4, 60, 10)) and entry["options"]["expires"] < 600
