"""An organisation's members and invitations: `/orgs/<slug>/members/` (reader+ sees, admin+ manages).

The rules are the services' (accounts.services, accounts.invitations), the same the admin API calls:
only owners make, demote or remove owners; the last owner stays; only owners invite owners.
A refused change shows the service's message and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.invitations import invitation_create, invitation_link, invitation_revoke
from accounts.models import Membership
from accounts.selectors import invitation_list, tenant_membership_list
from accounts.services import membership_remove, membership_role_set
from gateway.core.errors import ApplicationError
from gateway.dashboard import once
from gateway.dashboard.access import org_view
from gateway.dashboard.forms.members import InviteForm, RoleForm

ADMIN = Membership.Role.ADMIN
PAGE = "members"


def _back(slug: str) -> HttpResponse:
    return redirect("dashboard:members", slug)


def _page(request: HttpRequest, *, invite_form: InviteForm | None = None, status: int = 200) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    members = list(tenant_membership_list(tenant=org.tenant))
    pending = invitation_list(tenant=org.tenant).pending() if org.can_admin else None  # type: ignore[attr-defined]  # an InvitationQuerySet
    invitations = list(pending) if pending is not None else []
    context = {
        "nav_current": "members",
        "members": members,
        "role_choices": RoleForm(is_owner=org.is_owner).fields["role"].choices,  # type: ignore[attr-defined]
        "owner_count": sum(m.role == Membership.Role.OWNER for m in members),
        "invitations": invitations,
        "invite_form": invite_form or (InviteForm(is_owner=org.is_owner) if org.can_admin else None),
        "shown_once": once.pop(request, PAGE) if org.can_admin else None,
    }
    return render(request, "dashboard/members/list.html", context, status=status)


@org_view()
@require_GET
def members(request: HttpRequest, slug: str) -> HttpResponse:
    """The members with their roles and joined dates; admins also see pending invitations and the invite form."""
    return _page(request)


@org_view(min_role=ADMIN)
@require_POST
def member_role(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    """Change a member's role (PRG); the service's refusal (owner rules, last owner) is the message."""
    org = request.org  # type: ignore[attr-defined]
    form = RoleForm(request.POST, is_owner=org.is_owner)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles offered.")
        return _back(slug)
    try:
        membership_role_set(
            tenant=org.tenant, username=username, role=form.cleaned_data["role"], by_role=org.role, actor=request.user.username
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} is now {form.cleaned_data['role']}.")
    return _back(slug)


@org_view(min_role=ADMIN)
@require_POST
def member_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    """Remove a member (PRG); never the last owner."""
    org = request.org  # type: ignore[attr-defined]
    try:
        membership_remove(tenant=org.tenant, username=username, by_role=org.role, actor=request.user.username)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} is no longer a member of {org.tenant.slug}.")
    return _back(slug)


@org_view(min_role=ADMIN)
@require_POST
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    """Invite an email with a role: the mail goes out after commit, and the page shows the link once."""
    org = request.org  # type: ignore[attr-defined]
    form = InviteForm(request.POST, is_owner=org.is_owner)
    if form.is_valid():
        try:
            issued = invitation_create(
                tenant=org.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                by_role=org.role,
                invited_by=request.user,  # type: ignore[arg-type]
                actor=request.user.username,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            once.stash(request, PAGE, link=invitation_link(issued.token), email=issued.invitation.email)
            messages.success(request, f"Invitation sent to {issued.invitation.email}.")
            return _back(slug)
    return _page(request, invite_form=form, status=400)


@org_view(min_role=ADMIN)
@require_POST
def invitation_revoke_view(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    """Revoke a pending invitation: its link stops working."""
    org = request.org  # type: ignore[attr-defined]
    try:
        invitation_revoke(tenant=org.tenant, invitation_id=invitation_id, actor=request.user.username)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Invitation revoked.")
    return _back(slug)
