"""Accounts, signed in: TOTP and recovery codes (allauth.mfa), the sessions page and "sign out everywhere"."""

from __future__ import annotations

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.test import Client

from accounts.models import AuditEvent, RefreshToken
from accounts.principals import principal_for_password
from accounts.sessions import refresh_token_issue
from tests.dashboard.test_accounts import PASSWORD, _clear_allauth_rate_limits, sign_in, signed_in_as, verified_user

pytestmark = pytest.mark.django_db
__all__ = ["_clear_allauth_rate_limits"]  # autouse here too


# --- TOTP and recovery codes -------------------------------------------------------------------


def reauthenticate(client: Client) -> None:
    """allauth asks for the password again before MFA changes (a fresh sign-in is not enough)."""
    r = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert r.status_code == 302, r.context["form"].errors if r.context else r


def enable_totp(client: Client) -> str:
    assert client.get("/accounts/2fa/totp/activate/")["Location"].startswith("/accounts/reauthenticate/")
    reauthenticate(client)
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200, page.status_code
    secret = page.context["form"].secret
    assert secret.encode() in page.content  # shown for typing in, beside the QR code
    r = client.post("/accounts/2fa/totp/activate/", {"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    return secret


def test_totp_enable_then_sign_in_asks_for_the_code(client):
    alice = verified_user()
    sign_in(client, "alice")
    secret = enable_totp(client)
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    browser = Client()
    r = sign_in(browser, "alice")
    assert r.status_code == 302 and r["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in_as(browser) is None
    r = browser.post("/accounts/2fa/authenticate/", {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"})
    assert r.status_code == 200 and signed_in_as(browser) is None and r.context["form"].errors
    r = browser.post("/accounts/2fa/authenticate/", {"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 302 and r["Location"] == "/orgs/"
    assert signed_in_as(browser) == "alice"


def test_a_recovery_code_works_once(client):
    alice = verified_user()
    sign_in(client, "alice")
    enable_totp(client)
    codes_page = client.get("/accounts/2fa/recovery-codes/")
    codes = codes_page.context["unused_codes"]
    assert len(codes) == 10
    first = Client()
    sign_in(first, "alice")
    assert first.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert signed_in_as(first) == "alice"
    second = Client()
    sign_in(second, "alice")
    r = second.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert r.status_code == 200 and signed_in_as(second) is None
    assert len(Authenticator.objects.get(user=alice, type=Authenticator.Type.RECOVERY_CODES).wrap().get_unused_codes()) == 9


def test_totp_activation_with_a_wrong_code_activates_nothing(client):
    alice = verified_user()
    sign_in(client, "alice")
    reauthenticate(client)
    page = client.get("/accounts/2fa/totp/activate/")
    secret = page.context["form"].secret
    wrong = "123456" if pyotp.TOTP(secret).now() != "123456" else "654321"
    r = client.post("/accounts/2fa/totp/activate/", {"code": wrong})
    assert r.status_code == 200 and r.context["form"].errors["code"]
    assert not Authenticator.objects.filter(user=alice).exists()


# --- Sessions ----------------------------------------------------------------------------------


def test_sessions_page_needs_a_signed_in_user(client):
    r = client.get("/accounts/sessions/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    r = client.post("/accounts/sessions/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_sessions_page_lists_the_users_sessions_only(client):
    verified_user()
    sign_in(client, "alice")
    other = Client(HTTP_USER_AGENT="Firefox on the phone")
    sign_in(other, "alice")
    verified_user("bob")
    sign_in(Client(HTTP_USER_AGENT="Bob's browser"), "bob")
    r = client.get("/accounts/sessions/")
    assert r.status_code == 200
    assert len(r.context["sessions"]) == 2 and sum(s.is_current for s in r.context["sessions"]) == 1
    assert b"Firefox on the phone" in r.content and b"Bob&#x27;s browser" not in r.content
    assert b"This browser" in r.content and b'scope="col"' in r.content


def test_sessions_page_query_count_is_constant(client, django_assert_max_num_queries):
    verified_user()
    sign_in(client, "alice")
    client.get("/accounts/sessions/")  # the first page after signing in records the session's activity (middleware.py)
    with django_assert_max_num_queries(8) as few:
        assert client.get("/accounts/sessions/").status_code == 200
    one_session = len(few)
    for i in range(8):
        sign_in(Client(HTTP_USER_AGENT=f"device {i}"), "alice")
    with django_assert_max_num_queries(one_session):
        r = client.get("/accounts/sessions/")
    assert len(r.context["sessions"]) == 9


def test_sign_out_everywhere_ends_the_others_and_revokes_refresh_tokens(client):
    alice = verified_user()
    sign_in(client, "alice")
    other = Client()
    sign_in(other, "alice")
    bob = verified_user("bob")
    bobs = Client()
    sign_in(bobs, "bob")
    refresh_token_issue(principal=principal_for_password(alice), service="testserver")
    refresh_token_issue(principal=principal_for_password(bob), service="testserver")
    r = client.post("/accounts/sessions/")
    assert r.status_code == 302 and r["Location"] == "/accounts/sessions/"
    page = client.get("/accounts/sessions/")
    assert b"1 docker login session(s) were revoked" in page.content and len(page.context["sessions"]) == 1
    assert client.get("/orgs/").status_code == 200  # this browser stays signed in
    assert other.get("/orgs/").status_code == 302
    assert bobs.get("/orgs/").status_code == 200  # nobody else is affected
    alice.refresh_from_db()
    assert alice.session_epoch == 1
    assert not RefreshToken.objects.filter(user=alice, revoked_at__isnull=True).exists()
    assert RefreshToken.objects.filter(user=bob, revoked_at__isnull=True).count() == 1
    assert UserSession.objects.filter(user=alice).count() == 1
    event = AuditEvent.objects.get(action="sessions.revoke")
    assert event.target == "alice" and event.detail["refresh_tokens"] == 1


def test_sessions_page_refuses_other_methods(client):
    verified_user()
    sign_in(client, "alice")
    assert client.put("/accounts/sessions/").status_code == 405
    assert UserSession.objects.count() == 1 and not AuditEvent.objects.filter(action="sessions.revoke").exists()


def test_account_links_in_the_header(client):
    verified_user()
    sign_in(client, "alice")
    page = client.get("/orgs/").content
    assert b'href="/accounts/sessions/"' in page and b'href="/accounts/2fa/"' in page
