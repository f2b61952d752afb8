"""Template context every dashboard page has: the caller's organisations (the switcher) and the current one."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import Tenant
from accounts.selectors import membership_list
from gateway.dashboard.nav import org_nav


def dashboard(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    org = getattr(request, "org", None)
    return {
        "org": org,
        "org_nav": org_nav(org) if org is not None else [],
        # Lazy: evaluated only by a template that renders the switcher. A tenant being deleted is left
        # out: its pages answer 404 (access.org_for), so a link to it would lead nowhere.
        "my_memberships": getattr(request, "dashboard_memberships", None)
        or (lambda: list(membership_list(user=user).exclude(tenant__status=Tenant.Status.DELETING))),
    }
