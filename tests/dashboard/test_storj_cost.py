"""What the data costs at Storj, on the usage page (admins and owners) and the staff console's tenant page (with the margin)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.services import subscription_start
from billing.storj_savings import storj_overview_get
from gateway.dashboard.templatetags.wharf import usd
from gateway.registry.models import Blob, JobRun, Manifest, Repository, Tag
from gateway.registry.services.manifests import manifest_delete
from gateway.registry.services.retention import retention_policy_set
from tests.dashboard.conftest import CALLERS, assert_denied
from tests.dashboard.html import table
from tests.helpers import basic

pytestmark = pytest.mark.django_db
USAGE, STAFF = "/orgs/acme/usage/", "/staff/tenants/acme/"
SECTION = b'id="storj-cost"'


def rows() -> dict[str, list]:
    """What viewing must leave as it is: rows and GC's marks (the dry runs mark and delete, then roll back), jobs."""
    return {
        "blobs": sorted(Blob.objects.values_list("digest", "gc_candidate_since")),
        "manifests": sorted(Manifest.objects.values_list("digest", "gc_candidate_since")),
        "tags": sorted(Tag.objects.values_list("name", "manifest_id", "last_pushed_at")),
        "jobs": list(JobRun.objects.values_list("pk", "state")),
    }


@pytest.fixture
def data(reg, tenant):
    """One kept image, one untagged (GC's), two tags of which retention drops the older; all 40 days old."""
    reg.push_image("app", "keep", [b"kept layer " * 100])
    reg.push_image("app", "old", [b"garbage layer " * 5000])
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference="old", actor="test")
    reg.push_image("web", "1", [b"web one " * 50])
    reg.push_image("web", "2", [b"web two " * 50])
    retention_policy_set(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="web"), keep_last=1)
    then = timezone.now() - timedelta(days=40)
    Blob.objects.update(created_at=then)
    Manifest.objects.update(created_at=then)
    Tag.objects.filter(name="1").update(last_pushed_at=then)
    Tag.objects.exclude(name="1").update(last_pushed_at=then + timedelta(hours=1))


@pytest.mark.parametrize("caller", CALLERS)
def test_only_admins_and_owners_see_the_storj_cost_and_nobody_changes_anything(as_caller, caller, data):
    before = rows()
    response = as_caller(caller).get(USAGE)
    if caller in ("admin", "owner"):
        assert response.status_code == 200 and SECTION in response.content
    elif caller in ("reader", "writer"):
        assert response.status_code == 200 and SECTION not in response.content  # the usage page, without the costs
    else:
        assert_denied(response, caller)
    staff_page = as_caller(caller).get(STAFF)
    if caller == "staff":
        assert staff_page.status_code == 200 and SECTION in staff_page.content and b'id="storj-margin"' in staff_page.content
    else:
        assert_denied(staff_page, caller)
    assert rows() == before


def test_a_registry_token_opens_no_dashboard_page(owner_token, data):
    before = rows()
    for secret in (owner_token, "wharf_pat_revoked-or-made-up"):
        client = Client(HTTP_AUTHORIZATION=basic("owner", secret))
        for url in (USAGE, STAFF):
            response = client.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert rows() == before


def test_the_figures_are_the_selectors_and_the_staff_page_shows_the_margin(as_caller, tenant, data):
    subscription_start(tenant=tenant, plan_code="pro")
    overview = storj_overview_get(tenant=tenant)
    page = as_caller("owner").get(USAGE).content
    lines = {row[0]: row for row in table(page, "storj-lines")}
    assert lines["Storage"][3] == usd(overview.cost.lines["storage"]) and lines["Egress"][3] == usd(overview.cost.lines["egress"])
    assert "Segments" not in lines  # no segment fee on 2026 pricing
    assert f"{overview.cost.objects} objects" in lines["Storage"][1]
    savings = {row[0]: row for row in table(page, "storj-savings")}
    gc, retention = savings["Garbage collection ran now"], savings["Retention policies applied, then garbage collection"]
    # GC: the untagged manifest, its layer and the layer's index; retention: web:1's tag, manifest, layer and index.
    assert (gc[1], gc[3]) == ("3", usd(overview.gc.per_month))
    assert (retention[1], retention[3]) == ("4", usd(overview.retention.per_month))
    assert overview.gc.per_month > 0 and overview.retention.per_month > 0
    assert b"The Pro plan costs <strong>$9.00</strong> a month." in page and b'id="storj-margin"' not in page
    staff = as_caller("staff").get(STAFF).content
    assert f'id="storj-margin" title="{overview.cost.margin}"'.encode() in staff
    assert usd(overview.cost.plan["price_for_period"] - overview.cost.total).encode() in staff


def test_legacy_pricing_shows_the_segment_line(as_caller, tenant, data, settings):
    from gateway.settings.storj_prices import MODELS

    settings.GATEWAY_STORJ_PRICES = {**MODELS["legacy"], "model": "legacy", "segment_bytes": 64 * 1024 * 1024}
    page = as_caller("admin").get(USAGE).content
    lines = {row[0]: row for row in table(page, "storj-lines")}
    overview = storj_overview_get(tenant=tenant)
    assert lines["Segments"][1] == f"{overview.cost.segments} segments of 64 MiB"
    assert lines["Segments"][3] == usd(overview.cost.lines["segments"])
    assert b'id="storj-minimum"' not in page  # legacy has no minimum object size
    # The fixture's deleted tag: its segment for the moment it was stored; legacy has no minimum storage duration.
    assert lines["Deleted objects' segments"][1] == "1 segment of 64 MiB, until deleted"
    assert lines["Deleted objects' segments"][3] == usd(overview.cost.lines["deleted_segments"])
    assert "Minimum storage duration" not in lines


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_queries_do_not_grow_with_the_objects(as_caller, reg, tenant, data, django_assert_max_num_queries):
    owner, staff = as_caller("owner"), as_caller("staff")
    few = {USAGE: _queries(owner, USAGE), STAFF: _queries(staff, STAFF)}
    for i in range(4):  # more images, more garbage, more tags for retention
        reg.push_image("web", f"extra-{i}", [f"extra layer {i} ".encode() * 40])
        reg.push_image("app", f"junk-{i}", [f"junk layer {i} ".encode() * 40])
        manifest_delete(
            tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference=f"junk-{i}", actor="t"
        )
    with django_assert_max_num_queries(few[USAGE]):
        assert owner.get(USAGE).status_code == 200
    with django_assert_max_num_queries(few[STAFF]):
        assert staff.get(STAFF).status_code == 200


@pytest.mark.parametrize(
    "value,text",
    [
        (Decimal("7"), "$7.00"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.0000032314"), "$0.0000032"),
        (Decimal("0E-10"), "$0.00"),
        (Decimal("-1.2"), "-$1.20"),
        (Decimal("4E-11"), "$0.0000000000"),
        ("not money", ""),
        (None, ""),
        (Decimal("NaN"), ""),
    ],
)
def test_usd_shows_small_amounts_with_two_significant_digits(value, text):
    assert usd(value) == text


def test_what_was_deleted_this_month_is_priced_with_the_minimum_duration_fee(as_caller, tenant, data):
    from gateway.registry.services.gc import gc_run_to_completion

    # The fixture's manifest delete took the tag app:old, just pushed: billed to 30 days.
    lines = {row[0]: row for row in table(as_caller("owner").get(USAGE).content, "storj-lines")}
    first = storj_overview_get(tenant=tenant).cost
    assert lines["Deleted this month"][1].startswith("1 object, ")
    assert lines["Minimum storage duration"][1].startswith("1 object (")
    assert lines["Minimum storage duration"][3] == usd(first.lines["minimum_duration"]) and first.lines["minimum_duration"] > 0
    report = gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    assert report.counts["blobs_deleted"] == 1 and report.counts["manifests_deleted"] == 1
    page = as_caller("owner").get(USAGE).content
    lines = {row[0]: row for row in table(page, "storj-lines")}
    cost = storj_overview_get(tenant=tenant).cost
    gone = cost.deleted_total
    # GC's three objects (the manifest, its layer, the layer's index) were 40 days old: stored time only, no fee.
    assert gone.objects == 4 and gone.early_objects == 1
    assert lines["Deleted this month"][1].startswith("4 objects, ") and lines["Deleted this month"][3] == usd(
        cost.lines["deleted_storage"]
    )
    assert lines["Minimum storage duration"][3] == usd(cost.lines["minimum_duration"])
    assert f'title="{gone.bytes:,} bytes"'.encode() in page
    staff = {row[0]: row for row in table(as_caller("staff").get(STAFF).content, "storj-lines")}
    assert staff["Deleted this month"] == lines["Deleted this month"]
