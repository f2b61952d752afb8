"""Daily storage snapshots (StorageSnapshot): the service, the tasks, the beat entry, the history selector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant
from gateway.celery import app
from gateway.registry.models import StorageSnapshot
from gateway.registry.services.usage_snapshots import storage_snapshot_take
from gateway.registry.usage_selectors import usage_storage_get, usage_storage_history_list
from gateway.tasks import usage_snapshot_all_task, usage_snapshot_task
from tests.factories import make_tenant

FIGURES = ("stored_bytes", "manifest_bytes", "unique_bytes", "shared_bytes", "unreferenced_bytes")


def _today():
    return datetime.now(UTC).date()


@pytest.fixture
def eager():
    """Queued tasks run inline (the fan-out's per-tenant tasks), as the burst runner of house style rule 36."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.mark.django_db
def test_a_snapshot_records_what_usage_storage_get_counts_and_a_rerun_replaces_the_day(reg, tenant):
    reg.push_image("team/app", "v1", [b"layer-one"])
    first = storage_snapshot_take(tenant=tenant)
    assert first.day == _today()
    assert {f: getattr(first, f) for f in FIGURES} == {f: usage_storage_get(tenant=tenant)[f] for f in FIGURES}
    reg.push_image("team/web", "v1", [b"layer-two-longer"])
    again = storage_snapshot_take(tenant=tenant)
    assert again.pk == first.pk and again.stored_bytes > first.stored_bytes
    assert StorageSnapshot.objects.filter(tenant=tenant).count() == 1


@pytest.mark.django_db
def test_the_task_snapshots_one_tenant_and_is_quiet_when_it_is_gone_or_deleting(reg, tenant):
    reg.push_image("team/app", "v1", [b"layer-one"])
    assert usage_snapshot_task(tenant_id=tenant.pk) == usage_storage_get(tenant=tenant)["stored_bytes"]
    assert usage_snapshot_task(tenant_id=10**9) is None
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETING)
    StorageSnapshot.objects.all().delete()
    assert usage_snapshot_task(tenant_id=tenant.pk) is None and not StorageSnapshot.objects.exists()


@pytest.mark.django_db
def test_the_fan_out_snapshots_every_tenant_not_being_deleted(tenant, eager):
    other = make_tenant("globex")
    gone = make_tenant("initech")
    Tenant.objects.filter(pk=gone.pk).update(status=Tenant.Status.DELETING)
    assert usage_snapshot_all_task() == 2
    assert set(StorageSnapshot.objects.values_list("tenant_id", flat=True)) == {tenant.pk, other.pk}


def test_the_snapshot_runs_daily_late_in_the_utc_day_from_the_beat_schedule():
    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["usage-snapshot-all"]
    assert entry["task"] == usage_snapshot_all_task.name == "gateway.usage.snapshot_all"
    assert {"gateway.usage.snapshot_all", "gateway.usage.snapshot"} <= set(app.tasks)
    assert entry["schedule"].hour == {23} and entry["schedule"].minute == {52}
    assert app.conf.timezone == "UTC" and entry["options"]["expires"] < 24 * 3600


@pytest.mark.django_db
def test_history_lists_every_day_with_gaps_where_nothing_was_recorded_in_one_query(tenant):
    for back in (1, 3):
        StorageSnapshot.objects.create(
            tenant=tenant, day=_today() - timedelta(days=back), **{f: 100 * back + i for i, f in enumerate(FIGURES)}
        )
    make_tenant("globex")
    StorageSnapshot.objects.create(
        tenant=Tenant.objects.get(slug="globex"), day=_today() - timedelta(days=2), **dict.fromkeys(FIGURES, 7)
    )
    with CaptureQueriesContext(connection) as queries:
        history = usage_storage_history_list(tenant=tenant, since=_today() - timedelta(days=3), until=_today())
    assert len(queries.captured_queries) == 1
    assert [row["recorded"] for row in history] == [True, False, True, False]  # globex's day 2 is not acme's
    assert history[0] == {"date": _today() - timedelta(days=3), "recorded": True, **{f: 300 + i for i, f in enumerate(FIGURES)}}
    assert history[1] == {"date": _today() - timedelta(days=2), "recorded": False}
    with pytest.raises(ValueError):
        usage_storage_history_list(tenant=tenant, since=_today(), until=_today() - timedelta(days=1))
