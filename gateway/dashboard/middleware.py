"""allauth.usersessions' activity tracking without a database write on every signed-in request.

allauth's own middleware (`USERSESSIONS_TRACK_ACTIVITY`) runs a transaction on each request — a
SELECT, the user again and an UPDATE of the session's row — to keep "last seen", address and
browser current for the sessions page. This one does the same through the same manager method, but
only when the address or the browser changed (at once: the sessions page must show a new address)
or the last record is older than `SEEN_INTERVAL_S`; the marker lives in the session itself, so
skipping costs nothing. "Last seen" is then true to the minute.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from allauth.account.adapter import get_adapter
from allauth.usersessions.models import UserSession
from django.http import HttpRequest, HttpResponse

SEEN_INTERVAL_S = 60
_MARK = "_wharf_seen"  # [client address, browser digest, unix time of the last record]


class UserSessionsMiddleware:
    """Record the signed-in session's activity (allauth.usersessions) at most once a minute unless its client changed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session, user = getattr(request, "session", None), getattr(request, "user", None)
        if session is not None and session.session_key and user is not None and user.is_authenticated:
            client = [
                get_adapter().get_client_ip(request),
                hashlib.sha256(request.META.get("HTTP_USER_AGENT", "").encode()).hexdigest()[:16],
            ]
            now = int(time.time())
            mark = session.get(_MARK)
            fresh = isinstance(mark, list) and len(mark) == 3 and mark[:2] == client and isinstance(mark[2], int)
            if not fresh or now - mark[2] >= SEEN_INTERVAL_S:
                UserSession.objects.create_from_request(request, user=user, session=session)
                session[_MARK] = [*client, now]
        return self.get_response(request)
