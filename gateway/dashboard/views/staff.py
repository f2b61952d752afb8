"""The staff console under /staff/: every tenant (search, suspend, reactivate, quota), every background job, queue depths.

Staff only (`access.staff_view`: anonymous → login, anyone else → 404). Reads and writes go
through what the admin API uses (docs/decisions/0023): `gateway.registry.tenant_usage` for
tenants with their usage, `accounts.tenant_admin` for the audited writes, `selectors.jobrun_list`
for jobs, `gateway.core.queues` and the event backlog for what is waiting.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.locks import tenant_lock
from accounts.models import Tenant
from accounts.selectors import audit_event_list
from accounts.tenant_admin import tenant_quota_change, tenant_reactivate, tenant_suspend
from billing.storj_savings import storj_overview_get
from gateway.core.errors import ApplicationError, Conflict, ServiceUnavailable
from gateway.core.queues import celery_queue_depths
from gateway.dashboard.access import staff_view
from gateway.dashboard.forms.staff import JobFilterForm, QuotaForm, SuspendForm, TenantFilterForm, quota_initial
from gateway.dashboard.views.usage import storj_context
from gateway.registry import selectors
from gateway.registry.models import JobRun
from gateway.registry.services.stream import events_backlog
from gateway.registry.tenant_usage import tenant_get_with_usage, tenant_list_with_usage

PAGE_SIZE = 25
RECENT = 10
OPERATOR_ACTIONS = ("tenant.suspend", "tenant.reactivate", "tenant.quota.set")


def _page(request: HttpRequest, queryset: QuerySet) -> Page:
    """One page of `queryset` (already ordered): a COUNT and one SELECT, whatever the number of rows."""
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def queue_state() -> dict[str, Any]:
    """Celery queue depths and the event backlog, or `unavailable` with the reason when Redis cannot be reached."""
    try:
        depths, unacknowledged = celery_queue_depths()
        backlog = events_backlog()
    except ServiceUnavailable as exc:
        return {"unavailable": exc.message}
    return {"depths": sorted(depths.items()), "unacknowledged": unacknowledged, "events": backlog}


# -- front page and queues ------------------------------------------------------------------------


@staff_view
def console(request: HttpRequest) -> HttpResponse:
    """The console's front page: what is waiting, what runs, what failed lately."""
    jobs = selectors.jobrun_list(tenant=None).order_by("-pk")
    context = {
        "nav_current": "staff",
        "queues": queue_state(),
        "active_jobs": list(jobs.filter(state__in=(JobRun.State.QUEUED, JobRun.State.RUNNING))[:RECENT]),
        "failed_jobs": list(jobs.filter(state=JobRun.State.FAILED)[:RECENT]),
    }
    return render(request, "dashboard/staff/console.html", context)


@staff_view
def queues(request: HttpRequest) -> HttpResponse:
    """The queue depths panel alone (htmx polls it); "unavailable" rather than an error when Redis is down."""
    return render(request, "dashboard/staff/_queues.html", {"queues": queue_state()})


# -- tenants --------------------------------------------------------------------------------------


@staff_view
def tenant_list(request: HttpRequest) -> HttpResponse:
    """Every tenant with usage, members, repositories and quota; searched by slug or name, filtered by status."""
    form = TenantFilterForm(request.GET or None)
    tenants = tenant_list_with_usage(repositories=True)
    if form.is_bound:
        if form.is_valid():
            if q := form.cleaned_data["q"].strip():
                tenants = tenants.filter(Q(slug__icontains=q) | Q(name__icontains=q))
            if status := form.cleaned_data["status"]:
                tenants = tenants.filter(status=status)
        else:
            tenants = tenants.none()
    context = {"nav_current": "staff_tenants", "form": form, "page_obj": _page(request, tenants.order_by("slug"))}
    template = "dashboard/staff/_tenant_results.html" if request.htmx else "dashboard/staff/tenants.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _tenant_or_404(slug: str) -> Tenant:
    tenant = tenant_get_with_usage(slug=slug, repositories=True)
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def _tenant_page(request: HttpRequest, tenant: Tenant, status: int = 200, **forms: Any) -> HttpResponse:
    """The tenant's page, with the forms given (bound, carrying errors) or fresh ones."""
    context = {
        "nav_current": "staff_tenants",
        "tenant": tenant,
        "suspend_form": forms.get("suspend_form") or SuspendForm(),
        "quota_form": forms.get("quota_form") or QuotaForm(initial=quota_initial(tenant.storage_quota_bytes)),
        "jobs": list(selectors.jobrun_list(tenant=tenant).order_by("-pk")[:RECENT]),
        "operator_events": list(audit_event_list(tenant=tenant).filter(action__in=OPERATOR_ACTIONS)[:RECENT]),
        **storj_context(storj_overview_get(tenant=tenant), whose="this tenant's", margin=True),
    }
    return render(request, "dashboard/staff/tenant.html", context, status=status)


@staff_view
def tenant_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One tenant: details and usage, suspend or reactivate, its quota, its recent jobs and operator actions."""
    return _tenant_page(request, _tenant_or_404(slug))


@staff_view
@require_POST
def tenant_suspend_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Suspend the tenant with a reason (audited); pushes and deletes are refused from then on, pulls go on."""
    tenant = _tenant_or_404(slug)
    form = SuspendForm(request.POST)
    if tenant.status == Tenant.Status.DELETING:
        form.add_error(None, "The tenant is being deleted; it cannot be suspended.")
    if not form.is_valid():
        return _tenant_page(request, tenant, status=400, suspend_form=form)
    if tenant.status == Tenant.Status.SUSPENDED:
        messages.info(request, f"{tenant.slug} was already suspended; nothing changed.")
        return redirect("dashboard:staff_tenant", slug=tenant.slug)
    try:
        tenant_suspend(tenant=tenant, reason=form.cleaned_data["reason"], actor=request.user.username, ip=_ip(request))
    except ApplicationError as exc:
        form.add_error("reason", exc.message)
        return _tenant_page(request, tenant, status=400, suspend_form=form)
    messages.success(request, f"{tenant.slug} is suspended: its pushes and deletes are refused, pulls go on.")
    return redirect("dashboard:staff_tenant", slug=tenant.slug)


@staff_view
@require_POST
def tenant_reactivate_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Lift the tenant's suspension (audited); a no-op for an active tenant."""
    tenant = _tenant_or_404(slug)
    if tenant.status == Tenant.Status.ACTIVE:
        messages.info(request, f"{tenant.slug} is not suspended; nothing changed.")
        return redirect("dashboard:staff_tenant", slug=tenant.slug)
    try:
        tenant_reactivate(tenant=tenant, actor=request.user.username, ip=_ip(request))
    except Conflict as exc:  # being deleted: reactivating would undo the deletion's first step
        messages.error(request, exc.message)
        return _tenant_page(request, tenant, status=409)
    messages.success(request, f"{tenant.slug} is active again: pushes are accepted.")
    return redirect("dashboard:staff_tenant", slug=tenant.slug)


def _quota_apply(request: HttpRequest, tenant: Tenant, form: QuotaForm) -> bool:
    """Set the quota unless it changed since the form was shown (then a form error); the row is locked meanwhile."""
    wanted = form.cleaned_data["storage_quota_bytes"]
    with transaction.atomic():
        locked = tenant_lock(pk=tenant.pk)
        if locked is None:
            raise Http404("No such tenant.")
        if locked.storage_quota_bytes != form.cleaned_data["current"]:
            now = "none" if locked.storage_quota_bytes is None else f"{locked.storage_quota_bytes:,} bytes"
            form.add_error(None, f"The quota was changed meanwhile (it is now {now}); check it and submit again.")
            return False
        try:
            tenant_quota_change(tenant=locked, storage_quota_bytes=wanted, actor=request.user.username, ip=_ip(request))
        except Conflict as exc:  # being deleted
            form.add_error(None, exc.message)
            return False
    return True


@staff_view
@require_POST
def tenant_quota_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Set the tenant's storage quota (an amount in a binary unit) or clear it ("No quota"); audited."""
    tenant = _tenant_or_404(slug)
    form = QuotaForm(request.POST)
    if not form.is_valid() or not _quota_apply(request, tenant, form):
        return _tenant_page(request, _tenant_or_404(slug), status=400, quota_form=form)
    quota = form.cleaned_data["storage_quota_bytes"]
    text = "no quota (unlimited)" if quota is None else f"a quota of {quota:,} bytes"
    messages.success(request, f"{tenant.slug} now has {text}.")
    return redirect("dashboard:staff_tenant", slug=tenant.slug)


# -- jobs -----------------------------------------------------------------------------------------


@staff_view
def job_list(request: HttpRequest) -> HttpResponse:
    """Job runs of every tenant, newest first, filtered by state, kind and tenant; and the queue depths."""
    form = JobFilterForm(request.GET or None)
    jobs = selectors.jobrun_list(tenant=None)
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            if data["state"]:
                jobs = jobs.filter(state=data["state"])
            if data["kind"]:
                jobs = jobs.filter(kind=data["kind"])
            if data["tenant"]:
                jobs = jobs.filter(tenant__slug=data["tenant"])
        else:
            jobs = jobs.none()
    context = {"nav_current": "staff_jobs", "form": form, "page_obj": _page(request, jobs.order_by("-pk"))}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "dashboard/staff/_job_results.html", context)
    return render(request, "dashboard/staff/jobs.html", {**context, "queues": queue_state()})


@staff_view
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job run: its tenant, state, timings, progress counts, bytes freed and errors."""
    job = selectors.jobrun_list(tenant=None).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    return render(request, "dashboard/staff/job.html", {"nav_current": "staff_jobs", "job": job})
