"""Garbage collection of an organisation: what a run would free, "Run now", the run's live progress and report, recent runs.

Admins and owners only (everyone else: 404). The preview is the GC service's own selection
(`gc_preview`: its dry run, rolled back, no job row); "Run now" is `job_start`, the call the
admin API's jobs endpoint makes, so the JobRun row it queues is the progress the page polls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.models import Membership
from gateway.core.errors import Conflict
from gateway.dashboard.access import org_view
from gateway.registry import selectors
from gateway.registry.models import JobRun
from gateway.registry.services.gc import KIND_GC, GcReport, GcSettings, gc_preview
from gateway.registry.services.jobs import job_start

RECENT_RUNS = 20
LISTED = 50  # manifests and blobs the preview names (its counts and bytes are complete)
ACTIVE = (JobRun.State.QUEUED, JobRun.State.RUNNING)
# The report's counts people read first, in this order, with their labels; the rest follow by name.
REPORT_COUNTS = (
    ("manifests_deleted", "Manifests deleted"),
    ("blobs_deleted", "Blobs deleted"),
    ("objects_deleted", "Objects deleted from storage"),
    ("manifests_kept", "Manifests kept by the last check"),
    ("blobs_kept", "Blobs kept by the last check"),
    ("objects_kept", "Objects kept (in use again)"),
    ("manifests_skipped_locked", "Manifests skipped (a push held them)"),
    ("blobs_skipped_locked", "Blobs skipped (a push held them)"),
)


class GcRunForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[("delete", "Delete what it finds"), ("dry_run", "Dry run: report what would be deleted, delete nothing")],
        initial="delete",
        widget=forms.RadioSelect,
        label="What the run does",
        error_messages={"required": "Choose what the run does.", "invalid_choice": "Choose “delete” or “dry run”."},
    )


def _preview(report: GcReport) -> dict[str, Any]:
    counts = report.counts
    return {
        "manifests": counts.get("manifests_deleted", 0),
        "blobs": counts.get("blobs_deleted", 0),
        "bytes": report.bytes_freed,
        "complete": report.done,
        "busy": report.busy,
        "listed_manifests": report.manifests[:LISTED],
        "listed_blobs": report.blobs[:LISTED],
    }


def job_view(job: JobRun) -> dict[str, Any]:
    """A GC run as its panel shows it: state, timing, the counts in reading order, bytes, errors."""
    counts = dict(job.counts or {})
    rows = [(label, counts.pop(key)) for key, label in REPORT_COUNTS if key in counts]
    rows += [(key.replace("_", " ").capitalize(), value) for key, value in sorted(counts.items()) if isinstance(value, int)]
    # A queued run has not started (its started_at is when it was queued); a running one has run until its last beat.
    end = None if job.state == JobRun.State.QUEUED else job.finished_at or job.heartbeat_at
    return {
        "run": job,
        "active": job.state in ACTIVE,
        "counts": rows,
        "duration": (end - job.started_at).total_seconds() if end else None,
        "errors": list(job.errors or []),
    }


@org_view(min_role=Membership.Role.ADMIN)
@require_http_methods(["GET", "POST"])
def gc(request: HttpRequest, slug: str) -> HttpResponse:
    """The preview (now, and once the grace period is over), the run form, the latest run's panel and recent runs."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    form = GcRunForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        dry_run = form.cleaned_data["mode"] == "dry_run"
        try:
            job = job_start(tenant=tenant, kind=KIND_GC, dry_run=dry_run, actor=request.user.get_username())
        except Conflict as exc:
            messages.error(request, f"Not started: {exc.message}. Wait for it to finish.")
        else:
            messages.success(request, f"Garbage collection {'dry run ' if dry_run else ''}started (job {job.pk}).")
        return redirect("dashboard:gc", slug)
    grace = GcSettings.current().grace
    runs = list(selectors.jobrun_list(tenant=tenant).filter(kind=KIND_GC).order_by("-pk")[:RECENT_RUNS])
    context = {
        "nav_current": "gc",
        "form": form,
        "grace_hours": grace.total_seconds() / 3600,
        "now": _preview(gc_preview(tenant=tenant)),
        "later": _preview(gc_preview(tenant=tenant, grace=timedelta(0))),
        "latest": job_view(runs[0]) if runs else None,
        "runs": runs,
    }
    return render(request, "dashboard/gc/gc.html", context, status=400 if form.errors else 200)


@org_view(min_role=Membership.Role.ADMIN)
@require_http_methods(["GET"])
def gc_job(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    """One GC run: its panel alone for htmx (polled every 2 s while it is queued or running), else a page."""
    job = selectors.jobrun_get(tenant=request.org.tenant, run_id=job_id)  # type: ignore[attr-defined]
    if job is None or job.kind != KIND_GC:
        raise Http404("No such run.")
    context = {"nav_current": "gc", "latest": job_view(job)}
    template = "dashboard/gc/_job.html" if request.htmx else "dashboard/gc/job.html"  # type: ignore[attr-defined]
    return render(request, template, context)
