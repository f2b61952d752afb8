"""Who may call an operation, declared as data on each view (house style rule 14; docs/decisions/0019).

- `scope_map`: HTTP method → the token scopes of which one is needed (default: `api:read` or
  `api:write` for reads, `api:write` for writes — `api:write` includes reading). Only API scopes
  count here: the registry scopes (pull/push/delete) decide nothing under /api/, so an `api:write`
  token deletes a tag where the caller's role allows it, and a `delete` token with only `api:read`
  cannot. A password session has no scopes (its roles alone decide); a token without any
  admin-API scope (a registry-only pull/push/delete token) is refused with 403 whatever it asks.
  Robots never write, whatever their scopes (TenantMemberPermission).
- `tenant_roles`: HTTP method → the roles in the URL's tenant that may call it (`ROBOT`: a robot
  of that tenant may, for reads only). A caller who is not a member gets 404 (TenantMemberPermission resolves the tenant; no existence leak).
- `deleting_tenant_visible`: True on the views that still answer for a tenant being deleted (its GET, its jobs); 404 elsewhere.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import Membership, Tenant, TokenScope
from accounts.principals import Principal
from accounts.selectors import tenant_get_for_user
from gateway.core.errors import NotFound

API_SCOPES = frozenset({TokenScope.API_READ.value, TokenScope.API_WRITE.value, TokenScope.ADMIN.value})
# api:write includes reading: a token that may change something may look at it first.
READ = frozenset({TokenScope.API_READ.value, TokenScope.API_WRITE.value})
WRITE = frozenset({TokenScope.API_WRITE.value})
DEFAULT_SCOPE_MAP: dict[str, frozenset[str]] = {
    "GET": READ,
    "HEAD": READ,
    "OPTIONS": READ,
    "POST": WRITE,
    "PUT": WRITE,
    "PATCH": WRITE,
    "DELETE": WRITE,
}
ANY_ROLE = frozenset(Membership.Role.values)
ADMINS = frozenset({Membership.Role.OWNER.value, Membership.Role.ADMIN.value})
# A robot secret's "role": it may read (never write) where a view's tenant_roles names it.
ROBOT = "robot"


def _allowed_roles(view: Any, method: str | None) -> frozenset[str]:
    """The roles `view.tenant_roles` names for `method`; HEAD and OPTIONS are reads, allowed to whoever may GET."""
    read_as = "GET" if method in ("HEAD", "OPTIONS") else method or ""
    return getattr(view, "tenant_roles", {}).get(read_as, frozenset())


def _principal(request: Request) -> Principal | None:
    return request.auth if isinstance(request.auth, Principal) else None


class ApiScopePermission(BasePermission):
    """The caller's token carries one of the scopes `view.scope_map` names for the method (sessions always pass)."""

    message = "This token has no admin API scope for this operation (it needs one of: {needed})."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = _principal(request)
        if principal is None or principal.scopes is None:
            return bool(request.user and request.user.is_authenticated)
        needed = getattr(view, "scope_map", DEFAULT_SCOPE_MAP).get(request.method or "", frozenset())
        granted = frozenset(principal.scopes)
        if not granted & API_SCOPES or not granted & needed:
            self.message = ApiScopePermission.message.format(needed=", ".join(sorted(needed)) or "none")
            return False
        return True


class UserPrincipalPermission(BasePermission):
    """The caller is a user (robots have no profile or personal tokens)."""

    message = "Robot accounts have no user profile; use a personal access token."

    def has_permission(self, request: Request, view: Any) -> bool:
        return getattr(request.user, "pk", None) is not None


class TenantMemberPermission(BasePermission):
    """The URL's `slug` names a tenant the caller belongs to with a role `view.tenant_roles` allows; 404 for non-members.

    On success the view finds `request.tenant` and `request.tenant_role`.
    """

    message = "Your role in this tenant does not allow this operation."

    def has_permission(self, request: Request, view: Any) -> bool:
        slug = view.kwargs.get("slug", "")
        principal = _principal(request)
        if principal is not None and principal.robot is not None:
            robot = principal.robot
            if robot.tenant.slug != slug:
                raise NotFound(f"No tenant {slug!r}.")
            request.tenant, request.tenant_role = robot.tenant, ROBOT  # type: ignore[attr-defined]
            return request.method in ("GET", "HEAD", "OPTIONS") and ROBOT in _allowed_roles(view, request.method)
        if principal is not None and principal.membership is not None and principal.membership[0] == slug:
            found = principal.membership[1]  # read with the token, this request (accounts.bearer)
        else:
            found = tenant_get_for_user(slug=slug, user=request.user)  # type: ignore[arg-type]
        # A tenant being deleted is gone for every view but those that say they serve it (docs/decisions/0022).
        if found is None or (found[0].status == Tenant.Status.DELETING and not getattr(view, "deleting_tenant_visible", False)):
            raise NotFound(f"No tenant {slug!r}.")
        request.tenant, request.tenant_role = found  # type: ignore[attr-defined]
        return found[1] in _allowed_roles(view, request.method)


API_PERMISSIONS = [ApiScopePermission]


class TenantWidePermission(BasePermission):
    """The caller's token is not narrowed to repository patterns: tenant-wide reads (audit log, usage) cover every repository."""

    message = "This token is limited to some repositories; this operation covers the whole tenant."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = _principal(request)
        return principal is None or not principal.repositories


# /api/v1/admin/…: platform operators only (docs/decisions/0023). A token needs the `admin` scope for every method.
ADMIN_SCOPE_MAP: dict[str, frozenset[str]] = {method: frozenset({TokenScope.ADMIN.value}) for method in DEFAULT_SCOPE_MAP}


class StaffPermission(BasePermission):
    """The caller is a staff user (a robot never is); everyone else gets 403, since the published schema lists these routes."""

    message = "Only platform operators (staff users) may use the admin API."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(getattr(request.user, "is_staff", False) and getattr(request.user, "is_active", False))
