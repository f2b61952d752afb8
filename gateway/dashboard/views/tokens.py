"""The signed-in user's personal access tokens: `/settings/tokens/` (list, create with the secret shown once, revoke).

Scopes as the admin API allows them: the registry's and the admin API's; `admin` for staff users only.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import TokenScope
from accounts.selectors import access_token_list
from accounts.services import REGISTRY_SCOPES, access_token_issue, access_token_revoke
from gateway.core.errors import ApplicationError
from gateway.dashboard import once
from gateway.dashboard.forms.credentials import CredentialForm

PAGE = "tokens"


def token_scopes(user: object) -> list[str]:
    """The scopes this user's tokens may carry (the service refuses `admin` for everyone but staff)."""
    return [s for s in TokenScope.values if s != TokenScope.ADMIN or getattr(user, "is_staff", False)]


def _list(request: HttpRequest, form: CredentialForm | None = None, *, status: int = 200) -> HttpResponse:
    context = {
        "tokens": list(access_token_list(user=request.user)),  # type: ignore[arg-type]
        "form": form or CredentialForm(scopes=token_scopes(request.user), initial_scopes=list(REGISTRY_SCOPES)),
        "shown_once": once.pop(request, PAGE),
    }
    return render(request, "dashboard/tokens/list.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """GET: my tokens and the create form; POST: issue one (PRG, the secret shown once)."""
    if request.method != "POST":
        return _list(request)
    form = CredentialForm(request.POST, scopes=token_scopes(request.user))
    if form.is_valid():
        try:
            issued = access_token_issue(user=request.user, actor=request.user.username, **form.cleaned_data)  # type: ignore[arg-type]
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            username = request.user.username
            once.stash(request, PAGE, username=username, secret=issued.secret, login=once.docker_login_line(username))
            messages.success(request, f"Token {issued.token.name} created.")
            return redirect("dashboard:tokens")
    return _list(request, form, status=400)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of my tokens (and the refresh tokens issued through it)."""
    try:
        access_token_revoke(user=request.user, token_id=token_id, actor=request.user.username)  # type: ignore[arg-type]
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Token revoked; it no longer works.")
    return redirect("dashboard:tokens")
