"""The sessions page's activity record (gateway/dashboard/middleware.py): current, without a write on every request."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateway.dashboard import middleware
from tests.dashboard.test_accounts import _clear_allauth_rate_limits, sign_in, verified_user

pytestmark = pytest.mark.django_db
__all__ = ["_clear_allauth_rate_limits"]  # autouse here too


def _writes(client: Client, path: str = "/orgs/", **headers: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path, **headers).status_code == 200
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]


def _age_mark(client: Client, seconds: int) -> None:
    session = client.session
    mark = session[middleware._MARK]
    session[middleware._MARK] = [mark[0], mark[1], mark[2] - seconds]
    session.save()


def test_activity_is_recorded_once_a_minute_and_at_once_when_the_client_changes():
    verified_user()
    client = Client(HTTP_USER_AGENT="Firefox on the laptop")
    sign_in(client, "alice")
    _writes(client)  # the first page after signing in records the session (and its marker)
    row = UserSession.objects.get(session_key=client.session.session_key)
    seen = row.last_seen_at

    assert _writes(client) == [] and _writes(client) == []  # within the minute: no write at all
    assert UserSession.objects.get(pk=row.pk).last_seen_at == seen

    _age_mark(client, middleware.SEEN_INTERVAL_S)
    assert any("usersessions_usersession" in sql for sql in _writes(client))  # a minute later: recorded again
    assert UserSession.objects.get(pk=row.pk).last_seen_at > seen

    # Another browser on the same session (a stolen cookie, say) shows on the sessions page at once.
    assert any("usersessions_usersession" in sql for sql in _writes(client, HTTP_USER_AGENT="curl/8.0"))
    assert UserSession.objects.get(pk=row.pk).user_agent == "curl/8.0"
    assert _writes(client, HTTP_USER_AGENT="curl/8.0") == []
    # And another address.
    assert any("usersessions_usersession" in sql for sql in _writes(client, HTTP_USER_AGENT="curl/8.0", REMOTE_ADDR="10.1.2.3"))
    assert UserSession.objects.get(pk=row.pk).ip == "10.1.2.3"


@pytest.mark.parametrize("damaged", ["garbage", ["127.0.0.1"], ["127.0.0.1", "x", "not a time"], None])
def test_a_damaged_marker_is_replaced_not_trusted(damaged):
    verified_user()
    client = Client()
    sign_in(client, "alice")
    _writes(client)
    session = client.session
    session[middleware._MARK] = damaged
    session.save()
    assert any("usersessions_usersession" in sql for sql in _writes(client))
    assert isinstance(client.session[middleware._MARK], list)


def test_anonymous_requests_record_nothing():
    client = Client()
    with CaptureQueriesContext(connection) as queries:
        client.get("/accounts/login/")
    assert not any("usersessions_usersession" in q["sql"] for q in queries.captured_queries)
