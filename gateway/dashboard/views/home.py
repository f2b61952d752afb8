"""The signed-in landing page (organisations) and an organisation's overview."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.selectors import invitation_list_for_user
from gateway.dashboard.access import org_view
from gateway.registry import selectors


def root(request: HttpRequest) -> HttpResponse:
    """`/`: the dashboard for a signed-in user, the login page for everyone else."""
    return redirect("dashboard:home" if request.user.is_authenticated else "account_login")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The caller's organisations, and the pending invitations addressed to their email."""
    invitations = list(invitation_list_for_user(user=request.user))  # type: ignore[arg-type]
    return render(request, "dashboard/home.html", {"pending_invitations": invitations})


@org_view()
def org_overview(request: HttpRequest, slug: str) -> HttpResponse:
    """A short summary (repositories, stored bytes); an organisation with no repository yet goes to Getting started."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repositories = selectors.repository_list(tenant=tenant).count()
    if repositories == 0:
        return redirect("dashboard:start", slug)
    context = {"repository_count": repositories, "stored_bytes": selectors.usage_bytes(tenant=tenant)}
    return render(request, "dashboard/org_overview.html", context)
