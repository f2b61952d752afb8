"""Who may open a dashboard page: `org_view(min_role=...)` on every view under /orgs/<slug>/.

- Anonymous: redirect to the login page (with `next`).
- Not a member of the organisation, or the organisation is being deleted: 404, never 403 (no
  existence leak), whatever the role asked.
- A member whose role ranks below `min_role`: 404 as well for pages (a reader never learns the
  settings page exists), and nothing is changed.
The view gets `request.org` (an `Org`: the tenant and the caller's role) and the slug argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse

from accounts.models import Membership, Tenant
from accounts.selectors import membership_list

# Roles from least to most: a page open to `writer` is open to admins and owners too.
ROLE_ORDER = (Membership.Role.READER, Membership.Role.WRITER, Membership.Role.ADMIN, Membership.Role.OWNER)
_RANK = {role.value: rank for rank, role in enumerate(ROLE_ORDER)}


@dataclass(frozen=True)
class Org:
    """The organisation a page is about and the signed-in user's role in it."""

    tenant: Tenant
    role: str

    def at_least(self, role: str) -> bool:
        return _RANK.get(self.role, -1) >= _RANK[role]

    @property
    def can_write(self) -> bool:
        return self.at_least(Membership.Role.WRITER)

    @property
    def can_admin(self) -> bool:
        return self.at_least(Membership.Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER


def org_for(request: HttpRequest, slug: str, *, min_role: str = Membership.Role.READER) -> Org:
    """The organisation `slug` as the signed-in user sees it; Http404 when not a member, below `min_role` or being deleted."""
    user = request.user
    # One query for the page's organisation and the switcher's list (context.py reads it from the request).
    memberships = list(membership_list(user=user)) if user.is_active else []
    listed = [m for m in memberships if m.tenant.status != Tenant.Status.DELETING]  # a tenant being deleted is gone
    request.dashboard_memberships = listed  # type: ignore[attr-defined]
    found = next((m for m in listed if m.tenant.slug == slug), None)
    if found is None:
        raise Http404("No such organisation.")
    org = Org(tenant=found.tenant, role=found.role)
    if not org.at_least(min_role):
        raise Http404("No such page.")
    return org


def org_view(*, min_role: str = Membership.Role.READER) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a view taking `slug`: login required, then `request.org` set by `org_for` (404 otherwise)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            request.org = org_for(request, slug, min_role=min_role)  # type: ignore[attr-defined]
            return view(request, slug, *args, **kwargs)

        return wrapped

    return decorate


def staff_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required, then staff only: everyone else gets 404 (the console is not advertised)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped
