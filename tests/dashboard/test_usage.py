"""The usage page (/orgs/<slug>/usage/): from real pushes and pulls through /v2/, the daily storage snapshots, the quota bar."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway.dashboard.templatetags.wharf import binarysize
from gateway.registry.models import StorageSnapshot, UsageEvent
from gateway.registry.services.usage_snapshots import storage_snapshot_take
from gateway.registry.usage_selectors import usage_storage_get
from tests.dashboard.conftest import CALLERS, ROLES, assert_denied
from tests.dashboard.html import table, with_class

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/usage/"
CONFIG = b'{"architecture":"amd64","os":"linux"}'
SHARED, APP_ONLY, WEB_ONLY = b"shared-base-layer", b"app-layer-1234", b"web-layer-56789012"


def _today():
    return datetime.now(UTC).date()


@pytest.fixture
def images(reg, event_stream):
    """team/app and team/web sharing a layer and the config; team/app pulled twice (once three days ago), web once."""
    app = reg.push_image("team/app", "v1", [SHARED, APP_ONLY])
    web = reg.push_image("team/web", "v1", [SHARED, WEB_ONLY])
    for repo in ("team/app", "team/app", "team/web"):
        assert reg.get(f"/v2/acme/{repo}/manifests/v1").status_code == 200
    event_stream()
    first_app_pull = UsageEvent.objects.filter(direction="pull", repository_name="team/app").order_by("pk").first()
    UsageEvent.objects.filter(pk=first_app_pull.pk).update(occurred_at=datetime.now(UTC) - timedelta(days=3))
    return {"team/app": app[1], "team/web": web[1]}


@pytest.mark.parametrize("caller", CALLERS)
def test_usage_access(as_caller, caller):
    response = as_caller(caller).get(URL)
    if caller in ROLES:
        assert response.status_code == 200
        assert b"<h1>Usage</h1>" in response.content
    else:
        assert_denied(response, caller)


def test_storage_now_and_top_repositories_come_from_the_pushed_images(as_caller, images, tenant):
    storage = usage_storage_get(tenant=tenant)
    app, web = len(images["team/app"]), len(images["team/web"])
    assert storage["shared_bytes"] == len(CONFIG) + len(SHARED)
    page = as_caller("reader").get(URL).content
    today = table(page, "storage-table")[-1]
    assert today == [
        f"{_today():%Y-%m-%d} (now)",
        binarysize(storage["stored_bytes"]),
        binarysize(storage["unique_bytes"]),
        binarysize(storage["shared_bytes"]),
    ]
    assert f'title="{storage["stored_bytes"]} bytes"'.encode() in page  # the exact value beside the rounded one
    stored = table(page, "top-stored")
    assert [row[0] for row in stored] == ["team/web", "team/app"]  # web's layer is the larger one
    assert stored[0][1] == binarysize(web + len(CONFIG) + len(SHARED) + len(WEB_ONLY))
    assert table(page, "top-unique")[1] == ["team/app", binarysize(len(APP_ONLY))]
    assert table(page, "top-pulled") == [
        ["team/app", "2", binarysize(2 * app)],
        ["team/web", "1", binarysize(web)],
    ]


def test_egress_and_pulls_per_day_match_the_usage_events(as_caller, images):
    page = as_caller("reader").get(URL).content
    rows = {row[0]: row[1:] for row in table(page, "traffic-table")}
    assert len(rows) == 30
    app, web = len(images["team/app"]), len(images["team/web"])
    assert rows[f"{_today() - timedelta(days=3):%Y-%m-%d}"] == [binarysize(app), "1"]
    assert rows[f"{_today():%Y-%m-%d}"] == [binarysize(app + web), "2"]
    # One bar per day that had pulls, in both charts.
    assert [int(svg["data-points"]) for svg in with_class(page, "chart")][1:] == [2, 2]
    assert len(with_class(page, "chart-bar")) == 4


def test_storage_history_shows_recorded_snapshots_and_gaps_never_invented_figures(as_caller, images, tenant):
    snapshot = storage_snapshot_take(tenant=tenant, day=_today() - timedelta(days=5))
    page = as_caller("reader").get(URL).content
    rows = {row[0]: row[1:] for row in table(page, "storage-table")}
    assert rows[f"{_today() - timedelta(days=5):%Y-%m-%d}"] == [
        binarysize(snapshot.stored_bytes),
        binarysize(snapshot.unique_bytes),
        binarysize(snapshot.shared_bytes),
    ]
    assert rows[f"{_today() - timedelta(days=4):%Y-%m-%d}"] == ["not recorded"]
    assert sum(1 for cells in rows.values() if cells != ["not recorded"]) == 2  # that snapshot and today's live figure
    # Three series (stored, unique, shared), one point per recorded day each.
    assert int(with_class(page, "chart")[0]["data-points"]) == 3 * 2
    assert len(with_class(page, "chart-point")) == 6


def test_range_switch_shows_90_days_and_an_unknown_range_says_so(as_caller, images):
    client = as_caller("reader")
    assert len(table(client.get(URL + "?days=90").content, "storage-table")) == 90
    assert len(table(client.get(URL + "?days=90").content, "traffic-table")) == 90
    bad = client.get(URL + "?days=7")
    assert bad.status_code == 200 and b"Unknown period: showing the last 30 days." in bad.content
    assert len(table(bad.content, "storage-table")) == 30


def _quota_state(page: bytes) -> tuple[str | None, str]:
    bars = with_class(page, "quota-bar")
    text = re.search(rb'<section class="usage-quota".*?</section>', page, re.S).group(0).decode()  # type: ignore[union-attr]
    return (bars[0]["class"].split()[-1] if bars else None), text


@pytest.mark.parametrize(
    ("quota_of", "state", "warning"),
    [
        (None, None, None),
        (lambda used: used * 2, "quota-ok", None),
        (lambda used: used * 100 // 85, "quota-warn", "Over 80 % of the quota is used"),
        (lambda used: used * 100 // 80, "quota-warn", "Over 80 % of the quota is used"),
        (lambda used: used, "quota-full", "The quota is reached"),
        (lambda used: used // 2, "quota-full", "The quota is reached"),
    ],
)
def test_quota_bar_warns_at_80_and_100_percent(as_caller, images, tenant, quota_of, state, warning):
    used = usage_storage_get(tenant=tenant)["stored_bytes"]
    tenant.storage_quota_bytes = quota_of(used) if quota_of else None
    tenant.save(update_fields=["storage_quota_bytes"])
    found, text = _quota_state(as_caller("reader").get(URL).content)
    assert found == state
    if quota_of is None:
        assert "No quota" in text
    else:
        percent = used * 100 // tenant.storage_quota_bytes
        assert f"({percent} %)" in text and binarysize(tenant.storage_quota_bytes) in text
    assert (warning in text) if warning else ("quota-warning" not in text)


def _seed_days(tenant, days: int) -> None:
    """A snapshot and a pull event for each of the last `days` days."""
    now = datetime.now(UTC)
    StorageSnapshot.objects.bulk_create(
        StorageSnapshot(
            tenant=tenant,
            day=_today() - timedelta(days=i),
            stored_bytes=1000 + i,
            manifest_bytes=10,
            unique_bytes=500,
            shared_bytes=490 + i,
            unreferenced_bytes=0,
        )
        for i in range(1, days)
    )
    UsageEvent.objects.bulk_create(
        UsageEvent(
            tenant=tenant,
            repository_name=f"team/r{i % 12}",
            digest="sha256:" + "0" * 64,
            bytes=100 * i,
            kind="manifest",
            direction="pull",
            occurred_at=now - timedelta(days=i),
            batch=f"00000000-0000-0000-0000-{i:012d}",
            seq=0,
        )
        for i in range(days)
    )


def test_queries_are_constant_over_30_and_90_days_of_history(as_caller, images, tenant, django_assert_max_num_queries):
    client = as_caller("reader")
    _seed_days(tenant, 30)
    with CaptureQueriesContext(connection) as thirty:
        assert client.get(URL + "?days=30").status_code == 200
    StorageSnapshot.objects.all().delete()
    UsageEvent.objects.filter(batch__startswith="00000000").delete()
    _seed_days(tenant, 90)
    with django_assert_max_num_queries(len(thirty.captured_queries)):
        page = client.get(URL + "?days=90").content
    assert int(with_class(page, "chart")[0]["data-points"]) == 3 * 90  # every day recorded (89 snapshots and today)
