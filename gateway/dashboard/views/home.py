"""The signed-in landing page (organisations) and an organisation's overview."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from gateway.dashboard.access import org_view
from gateway.registry import selectors


def root(request: HttpRequest) -> HttpResponse:
    """`/`: the dashboard for a signed-in user, the login page for everyone else."""
    return redirect("dashboard:home" if request.user.is_authenticated else "account_login")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The caller's organisations; the only one when there is exactly one."""
    return render(request, "dashboard/home.html")


@org_view()
def org_overview(request: HttpRequest, slug: str) -> HttpResponse:
    """A short summary (repositories, stored bytes); an organisation with no repository yet goes to Getting started."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repositories = selectors.repository_list(tenant=tenant).count()
    if repositories == 0:
        return redirect("dashboard:start", slug)
    context = {"repository_count": repositories, "stored_bytes": selectors.usage_bytes(tenant=tenant)}
    return render(request, "dashboard/org_overview.html", context)
