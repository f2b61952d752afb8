"""The invitee's side: `/invitations/<token>/` (the emailed link) and accept/decline from the list on `/orgs/`.

Signed-in users only (anonymous: login, then back here). The invitation must be addressed to the
user's email, which the service checks; an accepted, revoked or expired one says so (410).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.invitations import invitation_accept, invitation_decline
from accounts.models import Invitation, Membership, Tenant
from accounts.selectors import invitation_get_for_user
from gateway.core.errors import ApplicationError, Conflict, Gone, NotFound, QuotaExceeded

NOT_YOURS = NotFound("No such invitation for your email address.")


def _ended(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    return render(request, "dashboard/invitations/ended.html", {"error": error.message}, status=error.status)


def _respond(request: HttpRequest, *, token: str | None = None, invitation_id: int | None = None) -> HttpResponse:
    """Accept or decline (the POST's `action`) through the services; their refusal is the page."""
    user, actor = request.user, request.user.username
    action = request.POST.get("action")
    try:
        if action == "accept":
            membership: Membership = invitation_accept(user=user, token=token, invitation_id=invitation_id, actor=actor)  # type: ignore[arg-type]
        elif action == "decline":
            declined = invitation_decline(user=user, token=token, invitation_id=invitation_id, actor=actor)  # type: ignore[arg-type]
        else:
            messages.error(request, "Choose Accept or Decline.")
            return redirect(request.get_full_path())
    except (NotFound, Gone) as exc:
        return _ended(request, exc)
    except Conflict as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:home")
    except QuotaExceeded as exc:  # the organisation is full (its plan's members limit): the invitation stays open
        messages.error(request, exc.message)
        return redirect(request.get_full_path())
    if action == "accept":
        messages.success(request, f"You joined {membership.tenant.slug} as {membership.role}.")
        return redirect("dashboard:org", membership.tenant.slug)
    messages.success(request, f"You declined the invitation to {declined.tenant.slug}.")
    return redirect("dashboard:home")


@login_required
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the organisation and role with Accept and Decline; POST: do it."""
    if request.method == "POST":
        return _respond(request, token=token)
    found = invitation_get_for_user(user=request.user, token=token)  # type: ignore[arg-type]
    if found is None:
        return _ended(request, NOT_YOURS)
    status = found.status()
    if status != Invitation.Status.PENDING:
        return _ended(request, Gone(f"This invitation is {status}; ask for a new one."))
    if found.tenant.status == Tenant.Status.DELETING:
        return _ended(request, Gone("The tenant of this invitation is being deleted."))
    return render(request, "dashboard/invitations/show.html", {"invitation": found})


@login_required
@require_POST
def invitation_respond(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Accept or decline one of the pending invitations listed on `/orgs/`."""
    return _respond(request, invitation_id=invitation_id)
