"""The signed-in user's own security pages: active sessions and "sign out everywhere" (`/accounts/sessions/`).

Sessions are allauth.usersessions rows (device, address, started, last seen), listed in a constant
number of queries. "Sign out everywhere" ends every other browser session (allauth) and every
`docker login` session (`accounts.sessions.user_sessions_revoke`: refresh tokens revoked, bearer
tokens' epoch bumped, audited); this browser stays signed in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from allauth.usersessions.internal.flows.sessions import end_other_sessions
from allauth.usersessions.models import UserSession
from django import forms
from django.contrib import messages
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.decorators import login_required
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.models import User
from accounts.sessions import user_sessions_revoke


@dataclass(frozen=True)
class SessionRow:
    ip: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    is_current: bool


class SignOutEverywhereForm(forms.Form):
    """No fields: the POST itself (with its CSRF token) is the confirmation."""


def session_list(*, user: User, current_key: str | None) -> list[SessionRow]:
    """The user's live sessions, newest activity first; rows of ended sessions (expired, or signed out by a password change) are deleted.

    Three queries whatever the number of sessions: the rows, their Django sessions, one delete.
    """
    rows = list(UserSession.objects.filter(user_id=user.pk).order_by("-last_seen_at", "-pk"))
    stores = Session.objects.filter(session_key__in=[row.session_key for row in rows], expire_date__gt=timezone.now())
    live = {store.session_key for store in stores if _belongs_to(store, user)}
    stale = [row.pk for row in rows if row.session_key not in live]
    if stale:
        UserSession.objects.filter(pk__in=stale).delete()
    return [
        SessionRow(
            ip=row.ip,
            user_agent=row.user_agent,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            is_current=row.session_key == current_key,
        )
        for row in rows
        if row.session_key in live
    ]


def _belongs_to(store: Session, user: User) -> bool:
    """Whether a stored session still signs `user` in (what django.contrib.auth.get_user would say, without a query)."""
    data = store.get_decoded()
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    return hmac.compare_digest(str(data.get(HASH_SESSION_KEY, "")), user.get_session_auth_hash())


@login_required
@require_http_methods(["GET", "POST"])
def sessions(request: HttpRequest) -> HttpResponse:
    """List the caller's sessions; POST signs out every other session and every `docker login`."""
    user = request.user
    assert isinstance(user, User)
    form = SignOutEverywhereForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        end_other_sessions(request, user)
        revoked = user_sessions_revoke(user=user, actor=user.username)
        messages.success(
            request,
            "Signed out everywhere else: other browser sessions have ended, "
            f"and {revoked.refresh_tokens} docker login session(s) were revoked.",
        )
        return redirect("dashboard:sessions")
    rows = session_list(user=user, current_key=request.session.session_key)
    return render(request, "dashboard/security/sessions.html", {"sessions": rows, "form": form, "nav_current": "sessions"})
