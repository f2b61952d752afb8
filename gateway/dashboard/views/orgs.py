"""Create an organisation (the caller becomes its owner), with the slug checked as it is typed."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from billing.services import tenant_open
from gateway.core.errors import Conflict
from gateway.dashboard.forms.orgs import OrgCreateForm, slug_problem


@login_required
@require_http_methods(["GET", "POST"])
def org_create(request: HttpRequest) -> HttpResponse:
    """GET the form; POST creates the tenant through billing.services.tenant_open (audited; the default plan) → its Getting started page."""
    form = OrgCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = tenant_open(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner=request.user,  # type: ignore[arg-type]
                actor=request.user.get_username(),
            )
        except Conflict:  # taken between the check and the insert
            form.add_error("slug", f"Tenant slug {form.cleaned_data['slug']!r} is taken; choose another.")
        else:
            messages.success(request, f"Organisation {tenant.slug} created. You are its owner.")
            return redirect("dashboard:start", tenant.slug)
    return render(request, "dashboard/orgs/create.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_GET
def check_slug(request: HttpRequest) -> HttpResponse:
    """The htmx fragment under the slug field: valid, taken or invalid, with the reason."""
    slug = request.GET.get("slug", "")
    state, reason = slug_problem(slug) if slug else ("empty", "")
    return render(request, "dashboard/orgs/_slug_check.html", {"state": state, "reason": reason})
