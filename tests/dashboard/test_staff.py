"""The staff console (/staff/): who gets in, what suspend / reactivate / quota change (and what a refused caller leaves alone),
validation, the registry's answer to a suspended tenant, queue depths with Redis down, constant query counts."""

from __future__ import annotations

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Tenant
from accounts.tenant_admin import tenant_quota_change, tenant_suspend
from gateway.core.queues import celery_queue_names
from gateway.registry import access
from gateway.registry.models import JobRun
from gateway.registry.selectors import usage_bytes
from tests.dashboard.conftest import CALLERS, assert_denied
from tests.factories import make_member, make_tenant
from tests.helpers import sha

pytestmark = pytest.mark.django_db
REFUSED = tuple(c for c in CALLERS if c != "staff")
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def job(tenant):
    return JobRun.objects.create(
        kind="gc",
        tenant=tenant,
        state=JobRun.State.FAILED,
        counts={"blobs_marked": 3, "blobs_deleted": 2},
        bytes_freed=5 * 1024 * 1024,
        errors=[{"error": "storage said SlowDown", "digest": "sha256:abc"}],
    )


def rows() -> dict[str, list]:
    """What a refused POST must leave alone: every tenant row and every audit entry."""
    return {
        "tenants": list(Tenant.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values("pk", "action")),
    }


def staff_urls(job_id: int) -> list[str]:
    return ["/staff/", "/staff/queues/", "/staff/tenants/", "/staff/tenants/acme/", "/staff/jobs/", f"/staff/jobs/{job_id}/"]


# -- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_only_staff_open_the_console(as_caller, caller, job):
    client = as_caller(caller)
    for url in staff_urls(job.pk):
        response = client.get(url)
        if caller == "staff":
            assert response.status_code == 200, (url, response.status_code)
        else:
            assert_denied(response, caller)


def test_inactive_staff_and_unknown_rows_are_404(as_caller, users, job):
    staff = as_caller("staff")
    assert staff.get("/staff/tenants/nope/").status_code == 404
    assert staff.get(f"/staff/jobs/{job.pk + 1000}/").status_code == 404
    assert staff.post("/staff/tenants/nope/suspend/", {"reason": "x"}).status_code == 404
    users["staff"].is_active = False
    users["staff"].save()
    assert_denied(staff.get("/staff/"), "anonymous")  # an inactive user's session no longer signs anyone in


def test_console_link_only_for_staff(as_caller):
    assert b'href="/staff/"' in as_caller("staff").get("/orgs/").content
    assert b'href="/staff/"' not in as_caller("owner").get("/orgs/acme/").content


@pytest.mark.parametrize("caller", REFUSED)
def test_refused_callers_change_nothing(as_caller, caller, tenant):
    globex = Tenant.objects.get(slug="globex")
    tenant_suspend(tenant=globex, reason="unpaid", actor="ops")
    before = rows()
    client = as_caller(caller)
    assert_denied(client.post("/staff/tenants/acme/suspend/", {"reason": "spam"}), caller)
    assert_denied(client.post("/staff/tenants/globex/reactivate/"), caller)
    assert_denied(client.post("/staff/tenants/acme/quota/", {"amount": "1", "unit": "GiB", "current": ""}), caller)
    assert rows() == before


def test_writes_are_post_only(as_caller, tenant):
    staff = as_caller("staff")
    before = rows()
    for action in ("suspend", "reactivate", "quota"):
        assert staff.get(f"/staff/tenants/acme/{action}/").status_code == 405
    assert rows() == before


# -- suspend and reactivate -----------------------------------------------------------------------


def _assert_push_denied_as_suspended(reg) -> None:
    layer = b"a layer pushed while suspended"
    response = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(layer)}", layer)
    assert response.status_code == 403, response.content
    (error,) = response.json()["errors"]
    assert error["code"] == "DENIED"
    assert "tenant 'acme' is suspended" in error["message"] and "pulls still work" in error["message"]


def test_suspend_refuses_pushes_keeps_pulls_and_reactivate_lifts_it(as_caller, reg):
    digest, payload = reg.push_image("app", "v1", [b"layer-one"])
    staff = as_caller("staff")
    response = staff.post("/staff/tenants/acme/suspend/", {"reason": "  abuse report #12 "}, follow=True)
    assert response.redirect_chain == [("/staff/tenants/acme/", 302)]
    assert b"acme is suspended" in response.content and b"abuse report #12" in response.content
    acme = Tenant.objects.get(slug="acme")
    assert acme.status == "suspended" and acme.suspension_reason == "abuse report #12" and acme.suspended_at
    event = AuditEvent.objects.get(action="tenant.suspend", tenant=acme)
    assert event.actor == "operator" and event.detail == {"reason": "abuse report #12"}

    access.caches_clear()  # what the registry's CACHE_SECONDS does in production
    _assert_push_denied_as_suspended(reg)
    # The operator's reason stays with the operators (decision 0023): registry clients only learn it is suspended.
    layer = b"another"
    assert "abuse" not in reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(layer)}", layer).json()["errors"][0]["message"]
    pulled = reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT="application/vnd.oci.image.manifest.v1+json")
    assert pulled.status_code == 200 and pulled.content == payload
    assert reg.get(f"/v2/acme/app/blobs/{sha(b'layer-one')}").status_code in (200, 307)

    listed = staff.get("/staff/tenants/?status=suspended")
    assert b">acme</a>" in listed.content and b"abuse report #12" in listed.content

    response = staff.post("/staff/tenants/acme/reactivate/", follow=True)
    assert b"acme is active again" in response.content and b"lifted: abuse report #12" in response.content
    assert Tenant.objects.get(slug="acme").status == "active"
    assert AuditEvent.objects.get(action="tenant.reactivate").detail["reason"] == "abuse report #12"
    access.caches_clear()
    reg.push_image("app", "v2", [b"layer-two"])


def test_suspend_twice_and_reactivate_active_change_nothing(as_caller, tenant):
    staff = as_caller("staff")
    staff.post("/staff/tenants/acme/suspend/", {"reason": "first"})
    before = rows()
    again = staff.post("/staff/tenants/acme/suspend/", {"reason": "second"}, follow=True)
    assert b"already suspended" in again.content and rows() == before
    staff.post("/staff/tenants/acme/reactivate/")
    before = rows()
    again = staff.post("/staff/tenants/acme/reactivate/", follow=True)
    assert b"not suspended" in again.content and rows() == before


@pytest.mark.parametrize(
    "reason,message",
    [("", b"Say why the tenant is suspended."), ("   ", b"Say why the tenant is suspended."), ("x" * 501, b"at most 500")],
)
def test_suspend_validation(as_caller, tenant, reason, message):
    before = rows()
    response = as_caller("staff").post("/staff/tenants/acme/suspend/", {"reason": reason})
    assert response.status_code == 400 and message in response.content
    assert rows() == before


def test_a_tenant_being_deleted_cannot_be_suspended(as_caller, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETING)
    before = rows()
    response = as_caller("staff").post("/staff/tenants/acme/suspend/", {"reason": "late"})
    assert response.status_code == 400 and b"being deleted" in response.content
    assert rows() == before


@pytest.mark.parametrize("suspended", [False, True])
def test_a_tenant_being_deleted_cannot_be_reactivated_or_given_a_quota(as_caller, tenant, suspended):
    if suspended:
        tenant_suspend(tenant=tenant, reason="abuse", actor="test")
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETING)
    staff = as_caller("staff")
    page = staff.get("/staff/tenants/acme/").content
    assert b"its quota can no longer be changed" in page and b"Set quota" not in page and b"Reactivate tenant" not in page
    before = rows()
    response = staff.post("/staff/tenants/acme/reactivate/")
    assert response.status_code == 409 and b"being deleted; it cannot be reactivated" in response.content
    response = staff.post("/staff/tenants/acme/quota/", {"amount": "1", "unit": "GiB", "current": ""})
    assert response.status_code == 400 and b"being deleted; it cannot be given a quota" in response.content
    assert rows() == before


# -- quota ----------------------------------------------------------------------------------------


def test_set_quota_in_binary_units_then_clear_it(as_caller, reg):
    reg.push_image("app", "v1", [b"x" * 4000])
    staff = as_caller("staff")
    response = staff.post("/staff/tenants/acme/quota/", {"amount": "1.5", "unit": "KiB", "current": ""}, follow=True)
    assert response.redirect_chain == [("/staff/tenants/acme/", 302)]
    assert b"a quota of 1,536 bytes" in response.content
    assert Tenant.objects.get(slug="acme").storage_quota_bytes == 1536
    event = AuditEvent.objects.get(action="tenant.quota.set")
    assert event.actor == "operator" and event.detail == {"before": None, "after": 1536}
    access.caches_clear()
    layer = b"y" * 100
    refused = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(layer)}", layer)  # already over the new quota
    assert refused.status_code == 403 and "quota" in refused.json()["errors"][0]["message"].lower()

    staff.post("/staff/tenants/acme/quota/", {"amount": "2", "unit": "GiB", "current": "1536"})
    assert Tenant.objects.get(slug="acme").storage_quota_bytes == 2 * 1024**3
    page = staff.get("/staff/tenants/acme/").content
    assert b'value="2"' in page and b'<option value="GiB" selected>' in page  # the form shows the quota it holds

    staff.post("/staff/tenants/acme/quota/", {"amount": "", "unit": "none", "current": str(2 * 1024**3)})
    assert Tenant.objects.get(slug="acme").storage_quota_bytes is None


@pytest.mark.parametrize(
    "data,message",
    [
        ({"amount": "-1", "unit": "GiB"}, b"greater than or equal to 0"),
        ({"amount": "1", "unit": "PB"}, b"Select a valid choice"),
        ({"amount": "lots", "unit": "MiB"}, b"Enter a number"),
        ({"amount": "", "unit": "MiB"}, b"Give an amount"),
        ({"amount": "99999999", "unit": "TiB"}, b"too large"),
        ({"amount": "1", "unit": "GiB", "current": "12abc"}, b"out of date"),
    ],
)
def test_quota_validation(as_caller, tenant, data, message):
    before = rows()
    response = as_caller("staff").post("/staff/tenants/acme/quota/", {"current": "", **data})
    assert response.status_code == 400 and message in response.content, response.content[-3000:]
    assert rows() == before


def test_quota_changed_meanwhile_is_not_overwritten(as_caller, tenant):
    staff = as_caller("staff")
    form = staff.get("/staff/tenants/acme/").content
    assert b'<input type="hidden" name="current" id="id_current">' in form and b'<option value="none" selected>' in form
    tenant_quota_change(tenant=tenant, storage_quota_bytes=10_000, actor="billing")  # while the operator's form is open
    before = rows()
    response = staff.post("/staff/tenants/acme/quota/", {"amount": "1", "unit": "GiB", "current": ""})
    assert response.status_code == 400 and b"changed meanwhile (it is now 10,000 bytes)" in response.content
    assert rows() == before


# -- lists ----------------------------------------------------------------------------------------


def test_tenant_list_shows_real_usage_and_searches(as_caller, reg, users):
    reg.push_image("app", "v1", [b"layer" * 300])
    reg.push_image("tools/ci", "v1", [b"other"])
    make_member(Tenant.objects.get(slug="acme"), "reader", username="late-reader")
    initech = make_tenant("initech")
    Tenant.objects.filter(pk=initech.pk).update(name="Initrode Corp")
    tenant_suspend(tenant=initech, reason="unpaid invoices", actor="ops")
    acme = Tenant.objects.get(slug="acme")
    stored = usage_bytes(tenant=acme)

    staff = as_caller("staff")
    page = staff.get("/staff/tenants/").content.decode()
    assert page.index(">acme</a>") < page.index(">globex</a>") < page.index(">initech</a>")
    assert f'title="{stored:,} bytes"' in page
    row = page[page.index(">acme</a>") : page.index(">globex</a>")]
    assert '<td class="num">2</td>' in row and '<td class="num">5</td>' in row  # repositories, members (4 + late-reader)

    assert b">initech</a>" in staff.get("/staff/tenants/?q=initrode").content
    found = staff.get("/staff/tenants/?q=ACM").content
    assert b">acme</a>" in found and b">globex</a>" not in found
    suspended = staff.get("/staff/tenants/?status=suspended").content
    assert b">initech</a>" in suspended and b">acme</a>" not in suspended and b"unpaid invoices" in suspended
    bad = staff.get("/staff/tenants/?status=gone")
    assert bad.status_code == 200 and b"Select a valid choice" in bad.content and b">acme</a>" not in bad.content

    partial = staff.get("/staff/tenants/?q=glob", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b">globex</a>" in partial.content and b">acme</a>" not in partial.content


def test_job_list_filters_and_detail(as_caller, tenant, job):
    globex = Tenant.objects.get(slug="globex")
    ok = JobRun.objects.create(kind="retention", tenant=globex, state=JobRun.State.SUCCEEDED, counts={"tags_deleted": 4})
    platform = JobRun.objects.create(kind="uploads_cleanup", tenant=None, state=JobRun.State.RUNNING)
    staff = as_caller("staff")
    page = staff.get("/staff/jobs/").content.decode()
    assert page.index(f">#{platform.pk}<") < page.index(f">#{ok.pk}<") < page.index(f">#{job.pk}<")  # newest first
    assert "storage said SlowDown" in page and "5 MiB freed" in page and "platform" in page

    failed = staff.get("/staff/jobs/?state=failed").content
    assert f">#{job.pk}<".encode() in failed and f">#{ok.pk}<".encode() not in failed
    retention = staff.get("/staff/jobs/?kind=retention").content
    assert f">#{ok.pk}<".encode() in retention and f">#{job.pk}<".encode() not in retention
    of_globex = staff.get("/staff/jobs/?tenant=globex", HTTP_HX_REQUEST="true").content
    assert b"<html" not in of_globex and f">#{ok.pk}<".encode() in of_globex and f">#{job.pk}<".encode() not in of_globex
    bad = staff.get("/staff/jobs/?kind=mining")
    assert b"Select a valid choice" in bad.content and f">#{job.pk}<".encode() not in bad.content

    detail = staff.get(f"/staff/jobs/{job.pk}/").content.decode()
    assert "blobs_marked" in detail and "storage said SlowDown" in detail and "sha256:abc" in detail
    assert 'title="5,242,880 bytes"' in detail and "/staff/tenants/acme/" in detail
    assert f">#{job.pk}<" in staff.get("/staff/tenants/acme/").content.decode()  # the tenant page's recent jobs


# -- queues ---------------------------------------------------------------------------------------


@pytest.fixture
def broker():
    """The Celery broker's queue lists, emptied before and after."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    keys = [f"{name}{Channel.sep}{step}" if step else name for name in celery_queue_names() for step in PRIORITY_STEPS]
    keys.append(Channel.unacked_key)
    client.delete(*keys)
    yield client
    client.delete(*keys)
    client.close()


def test_queue_depths_come_from_the_broker(as_caller, broker):
    with current_app.connection_for_write() as conn:
        for _ in range(3):
            current_app.send_task("gateway.gc.tenant", kwargs={"tenant_id": 0}, queue="gc", connection=conn)
    panel = as_caller("staff").get("/staff/queues/").content.decode()
    gc_row = panel[panel.index("<code>gc</code>") :]
    assert gc_row[: gc_row.index("</tr>")].endswith('<td class="num">3</td>')
    assert "Queue depths unavailable" not in panel


def test_queue_depths_unavailable_when_redis_is_down(as_caller, job):
    staff = as_caller("staff")
    with override_settings(CELERY_BROKER_URL=DEAD_REDIS, REDIS_URL=DEAD_REDIS):
        for url in ("/staff/", "/staff/queues/", "/staff/jobs/"):
            response = staff.get(url)
            assert response.status_code == 200, url
            assert b"Queue depths unavailable." in response.content and b"cannot be reached" in response.content


# -- query counts ---------------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _more_tenants(n: int, start: int) -> None:
    for i in range(start, start + n):
        t = make_tenant(f"bulk{i:03d}")
        JobRun.objects.create(kind="gc", tenant=t, state=JobRun.State.SUCCEEDED, counts={"blobs_deleted": i})


def test_list_pages_cost_the_same_queries_for_5_and_50_rows(as_caller, tenant, django_assert_max_num_queries):
    staff = as_caller("staff")
    urls = ("/staff/tenants/", "/staff/tenants/?q=bulk&status=active", "/staff/jobs/", "/staff/jobs/?kind=gc", "/staff/")
    _more_tenants(3, 0)  # acme, globex and 3 more: 5 tenants, 3 jobs
    few = {url: _queries(staff, url) for url in urls}
    _more_tenants(47, 3)  # 52 tenants, 50 jobs (three pages, two)
    for url in urls:
        with django_assert_max_num_queries(few[url]):
            assert staff.get(url).status_code == 200
    assert b"Page 1 of 3" in staff.get("/staff/tenants/").content
    last = staff.get("/staff/tenants/?page=3").content
    assert b">bulk049</a>" in last and b">globex</a>" in last and b">acme</a>" not in last
    assert b"Page 2 of 2" in staff.get("/staff/jobs/?kind=gc&page=2").content
