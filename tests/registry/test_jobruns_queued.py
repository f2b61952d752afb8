"""A queued JobRun (started through the API): its task starts it, a busy tenant supersedes it, a lost message closes it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from gateway.core.locks import advisory_lock, lock_id
from gateway.registry.models import Blob, JobRun
from gateway.registry.services.gc import gc_run
from gateway.registry.services.jobruns import jobrun_get_running, jobruns_close_stale
from gateway.registry.services.jobs import job_queued_create
from tests.helpers import sha

pytestmark = pytest.mark.django_db


def test_the_first_pickup_starts_a_queued_run_once(tenant):
    run = job_queued_create(kind="audit", tenant=tenant)
    queued_at = run.started_at
    started = jobrun_get_running(run_id=run.pk, kind="audit")
    assert started is not None and started.state == JobRun.State.RUNNING and started.started_at >= queued_at
    again = jobrun_get_running(run_id=run.pk, kind="audit")  # a continuation: the same running run, not restarted
    assert again is not None and again.started_at == started.started_at
    assert jobrun_get_running(run_id=run.pk, kind="gc") is None  # of another kind: not this one


def test_a_queued_dry_run_stays_a_dry_run_whatever_its_task_says(reg, tenant, settings):
    settings.GATEWAY_GC_GRACE_SECONDS = 0
    reg.push_image("app", "old", [b"garbage"])
    assert reg.delete("/v2/acme/app/manifests/old").status_code == 202
    run = job_queued_create(kind="gc", tenant=tenant, dry_run=True)
    report = gc_run(tenant=tenant, job_id=run.pk)  # the task called without dry_run
    assert report is not None and report.dry_run and report.done
    run.refresh_from_db()
    assert run.state == JobRun.State.SUCCEEDED and run.dry_run
    assert Blob.objects.filter(digest=sha(b"garbage")).exists()


@pytest.mark.django_db(transaction=True)
def test_a_queued_gc_whose_tenant_is_held_elsewhere_is_closed_as_superseded(tenant):
    run = job_queued_create(kind="gc", tenant=tenant)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id(f"job:gc:{tenant.pk}")])
        assert gc_run(tenant=tenant, job_id=run.pk) is None
    finally:
        other.close()
    run.refresh_from_db()
    assert run.state == JobRun.State.FAILED and run.finished_at and "superseded" in run.errors[-1]["error"]
    with advisory_lock(f"job:gc:{tenant.pk}") as taken:
        assert taken  # the other holder's lock went with its connection


def test_a_queued_run_whose_message_was_lost_is_closed_like_a_dead_one(tenant, settings):
    settings.GATEWAY_JOB_STALE_SECONDS = 60
    lost = job_queued_create(kind="gc", tenant=tenant)
    fresh = job_queued_create(kind="audit", tenant=tenant)
    JobRun.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    assert jobruns_close_stale() == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.state == JobRun.State.FAILED and lost.errors[-1]["error"].startswith("abandoned")
    assert fresh.state == JobRun.State.QUEUED
