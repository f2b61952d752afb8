"""The garbage-collection pages: /orgs/<slug>/gc/ (preview, Run now, recent runs) and /orgs/<slug>/gc/jobs/<id>/ (a run's panel).

The preview is the GC service's own selection (`gc_preview`), checked here against what a real
run then deletes; Run now is `job_start`, the admin API's jobs call; its run is driven by the
GC task itself, called directly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from gateway.registry.models import Blob, JobRun, Manifest, Repository
from gateway.registry.services.gc import gc_mark, gc_preview, gc_run_to_completion
from gateway.registry.services.jobs import job_start
from gateway.registry.services.manifests import manifest_delete
from gateway.tasks import gc_tenant_task
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.dashboard.images import push_index, push_index_with_referrers
from tests.helpers import sha

pytestmark = pytest.mark.django_db

GC = "/orgs/acme/gc/"
ADMINS = allowed("admin")


def untag(tenant, repository: str, tag: str) -> None:
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name=repository), reference=tag, actor="test")


@pytest.fixture
def garbage(tenant, reg):
    """Kept: a tagged image, a tagged index with its untagged platforms and referrers. Garbage: an untagged image
    (one layer shared with the kept one) and an untagged index with its platforms."""
    reg.push_image("app", "keep", [b"shared" * 50, b"kept" * 20])
    doomed, _ = reg.push_image("app", "old", [b"shared" * 50, b"doomed" * 30])
    kept = push_index_with_referrers(reg, "multi", "1.0")
    old = push_index(reg, "multi", "0.9", salt="old-")
    untag(tenant, "app", "old")
    untag(tenant, "multi", "0.9")
    return {"doomed": doomed, "kept_index": kept, "old_index": old}


@pytest.fixture
def little(tenant, reg):
    """One tagged image and one untagged: enough garbage for the access matrix."""
    reg.push_image("app", "keep", [b"kept" * 20])
    reg.push_image("app", "old", [b"doomed" * 30])
    untag(tenant, "app", "old")


def state() -> dict[str, list]:
    """The rows a refused or read-only request must leave as they are (marks included)."""
    return {
        "jobs": list(JobRun.objects.order_by("pk").values_list("pk", "state")),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", "action")),
        "manifests": list(Manifest.objects.order_by("pk").values_list("pk", "gc_candidate_since")),
        "blobs": list(Blob.objects.order_by("pk").values_list("pk", "gc_candidate_since")),
    }


# -- access -------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_page_access(as_caller, caller, little):
    response = as_caller(caller).get(GC)
    if caller in ADMINS:
        assert response.status_code == 200 and b"What would be freed" in response.content
    else:
        assert_denied(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_run_now_access_and_a_refused_caller_changes_nothing(as_caller, caller, tenant, little):
    before = state()
    response = as_caller(caller).post(GC, {"mode": "delete"})
    if caller in ADMINS:
        assert response.status_code == 302 and response["Location"] == GC
        job = JobRun.objects.get()
        assert (job.kind, job.state, job.dry_run, job.tenant_id) == ("gc", "queued", False, tenant.pk)
        event = AuditEvent.objects.get(action="job.start")
        assert event.tenant_id == tenant.pk and event.detail == {"job_id": job.pk, "dry_run": False}
        assert event.actor == {"admin": "acme-admin", "owner": "owner"}[caller]
    else:
        assert_denied(response, caller)
        assert state() == before  # no job, no audit entry, no mark


@pytest.mark.parametrize("caller", CALLERS)
def test_job_panel_access(as_caller, caller, tenant):
    job = job_start(tenant=tenant, kind="gc")
    response = as_caller(caller).get(f"{GC}jobs/{job.pk}/")
    if caller in ADMINS:
        assert response.status_code == 200 and f"Run {job.pk}".encode() in response.content
    else:
        assert_denied(response, caller)


def test_another_organisations_run_and_other_kinds_of_run_are_404(as_caller, users, tenant):
    from accounts.models import Tenant

    theirs = job_start(tenant=Tenant.objects.get(slug="globex"), kind="gc")
    audit = job_start(tenant=tenant, kind="audit")
    client = as_caller("owner")
    assert client.get(f"{GC}jobs/{theirs.pk}/").status_code == 404
    assert client.get(f"{GC}jobs/{audit.pk}/").status_code == 404
    assert client.get(f"{GC}jobs/999999/").status_code == 404
    assert client.put(GC).status_code == 405


# -- Run now ------------------------------------------------------------------


def test_run_now_says_so_and_the_page_polls_the_run_until_the_task_finished_it(as_caller, tenant, little, settings):
    client = as_caller("owner")
    page = client.post(GC, {"mode": "delete"}, follow=True)
    job = JobRun.objects.get()
    assert f"Garbage collection started (job {job.pk})." in page.content.decode()
    assert 'hx-trigger="every 2s"' in page.content.decode() and f'hx-get="{GC}jobs/{job.pk}/"' in page.content.decode()
    fragment = client.get(f"{GC}jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and b"<html" not in fragment.content  # the panel alone
    assert b'hx-trigger="every 2s"' in fragment.content and b"queued" in fragment.content

    later = gc_preview(tenant=tenant, grace=timedelta(0))
    settings.GATEWAY_GC_GRACE_SECONDS = 0
    gc_tenant_task(tenant_id=tenant.pk, job_id=job.pk)  # what the worker runs for this job

    job.refresh_from_db()
    assert job.state == "succeeded" and job.bytes_freed == later.bytes_freed > 0
    fragment = client.get(f"{GC}jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment  # it stops polling
    assert "succeeded" in fragment and f'title="{job.bytes_freed:,} bytes"' in fragment
    assert f'<th scope="row">Manifests deleted</th><td class="num">{later.counts["manifests_deleted"]}</td>' in fragment
    assert f'<th scope="row">Blobs deleted</th><td class="num">{later.counts["blobs_deleted"]}</td>' in fragment
    assert "Duration" in fragment and "No errors." in fragment
    listing = client.get(GC).content.decode()
    assert f'href="{GC}jobs/{job.pk}/"' in listing and "hx-trigger" not in listing


def test_a_second_run_while_one_is_queued_is_refused_with_a_clear_message(as_caller, little):
    client = as_caller("admin")
    client.post(GC, {"mode": "delete"})
    before = state()
    page = client.post(GC, {"mode": "dry_run"}, follow=True).content.decode()
    assert "Not started: a GC of this tenant is already queued" in page
    assert state() == before


@pytest.mark.parametrize(
    ("data", "message"), [({}, "Choose what the run does."), ({"mode": "everything"}, "Choose “delete” or “dry run”.")]
)
def test_bad_input_is_refused_with_a_clear_message_and_starts_nothing(as_caller, little, data, message):
    before = state()
    response = as_caller("owner").post(GC, data)
    assert response.status_code == 400 and message in response.content.decode()
    assert state() == before


def test_a_dry_run_is_queued_as_one(as_caller):
    as_caller("owner").post(GC, {"mode": "dry_run"})
    assert JobRun.objects.get().dry_run is True


# -- preview ------------------------------------------------------------------


def _gone(before_manifests: set, before_blobs: set) -> tuple[set, set]:
    manifests = before_manifests - set(Manifest.objects.values_list("repository__name", "digest"))
    blobs = before_blobs - set(Blob.objects.values_list("digest", flat=True))
    return manifests, blobs


def test_the_preview_once_the_grace_period_is_over_equals_what_a_run_then_deletes(tenant, garbage):
    preview = gc_preview(tenant=tenant, grace=timedelta(0))
    manifests = set(Manifest.objects.values_list("repository__name", "digest"))
    blobs = set(Blob.objects.values_list("digest", flat=True))
    old = garbage["old_index"]
    expected = {("app", garbage["doomed"]), ("multi", old.digest)} | {("multi", p.digest) for p in old.platforms}
    assert {(m["repository"], m["digest"]) for m in preview.manifests} == expected
    assert sha(b"doomed" * 30) in {b["digest"] for b in preview.blobs} and sha(b"shared" * 50) not in {
        b["digest"] for b in preview.blobs
    }
    assert JobRun.objects.count() == 0  # a preview is no run

    report = gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    gone_manifests, gone_blobs = _gone(manifests, blobs)
    assert gone_manifests == {(m["repository"], m["digest"]) for m in preview.manifests}
    assert gone_blobs == {b["digest"] for b in preview.blobs}
    assert report is not None and report.bytes_freed == preview.bytes_freed
    assert report.counts["manifests_deleted"] == preview.counts["manifests_deleted"] == 4
    assert report.counts["blobs_deleted"] == preview.counts["blobs_deleted"]
    # The kept index's untagged platforms and referrers were never garbage.
    kept = garbage["kept_index"]
    assert Manifest.objects.filter(digest__in=[p.digest for p in kept.platforms]).count() == 2
    assert Manifest.objects.filter(subject_digest__in=list(kept.referrers)).count() == 2


def test_the_preview_now_respects_the_grace_period_and_equals_a_run_now(tenant, garbage):
    assert gc_preview(tenant=tenant).bytes_freed == 0  # nothing has been unused for the grace period yet
    gc_mark(tenant=tenant, now=timezone.now() - timedelta(days=2))  # as if a run had marked them two days ago
    now = gc_preview(tenant=tenant)
    assert now.bytes_freed == gc_preview(tenant=tenant, grace=timedelta(0)).bytes_freed > 0
    manifests = set(Manifest.objects.values_list("repository__name", "digest"))
    blobs = set(Blob.objects.values_list("digest", flat=True))
    report = gc_run_to_completion(tenant=tenant)
    assert _gone(manifests, blobs) == ({(m["repository"], m["digest"]) for m in now.manifests}, {b["digest"] for b in now.blobs})
    assert report is not None and report.bytes_freed == now.bytes_freed


def test_the_page_shows_both_previews_and_changes_nothing(as_caller, tenant, garbage):
    later = gc_preview(tenant=tenant, grace=timedelta(0))
    before = state()
    html = as_caller("admin").get(GC).content.decode()
    assert state() == before  # no mark set, no job row, no audit entry
    assert '<div class="card preview" id="preview-now">' in html
    now_card = html[html.index('id="preview-now"') : html.index('id="preview-later"')]
    later_card = html[html.index('id="preview-later"') :]
    assert 'title="0 bytes"' in now_card and "0 manifests, 0 blobs" in now_card
    assert f'title="{later.bytes_freed:,} bytes"' in later_card
    assert f"{later.counts['manifests_deleted']} manifests, {later.counts['blobs_deleted']} blobs" in later_card
    assert f"app@{garbage['doomed'][:19]}" in later_card
    assert "grace period (24 hours)" in html


def test_recent_runs_cost_the_same_queries_for_2_and_15_runs(as_caller, tenant, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = as_caller("admin")

    def runs(n: int) -> None:
        for _ in range(n):
            job = job_start(tenant=tenant, kind="gc")
            JobRun.objects.filter(pk=job.pk).update(state="succeeded", finished_at=timezone.now(), bytes_freed=1234)

    runs(2)
    client.get(GC)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(GC).status_code == 200
    runs(13)
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        html = client.get(GC).content.decode()
    assert html.count(f'href="{GC}jobs/') == 15


@pytest.mark.django_db(transaction=True)
def test_while_a_run_holds_the_rows_the_preview_says_a_run_is_going_on(as_caller, tenant, garbage, monkeypatch):
    import threading

    from django.db import connections

    from gateway.core.locks import advisory_lock
    from gateway.registry.services import gc

    monkeypatch.setattr(gc, "PREVIEW_WAIT_MS", 100)
    holding, release = threading.Event(), threading.Event()

    def real_run_going_on():
        with advisory_lock(gc.rows_lock_name(tenant), wait=True):
            holding.set()
            release.wait(30)
        connections.close_all()

    holder = threading.Thread(target=real_run_going_on, daemon=True)
    holder.start()
    assert holding.wait(30)
    try:
        page = as_caller("admin").get(GC)
    finally:
        release.set()
        holder.join(30)
    assert page.status_code == 200
    assert page.content.decode().count("is running now: refresh when it has finished") == 2  # both previews
    assert not Manifest.objects.filter(tenant=tenant, gc_candidate_since__isnull=False).exists()
    assert "is running now" not in as_caller("admin").get(GC).content.decode()  # after the run: numbers again
