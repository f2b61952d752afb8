"""Accounts (django-allauth) through the test client: sign-up and verification, sign-in, the shared login throttle,
password change and reset, social providers, production cookies (MFA and sessions: test_accounts_security.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import redis
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client, override_settings

from accounts.models import AuditEvent, RefreshToken, User
from accounts.principals import principal_for_password
from accounts.sessions import refresh_token_issue
from tests.factories import UserFactory
from tests.helpers import ROOT, basic, subprocess_env

pytestmark = pytest.mark.django_db

PASSWORD = "pw-secret-123"
NEW_PASSWORD = "a-much-longer-new-passphrase-42"


@pytest.fixture(autouse=True)
def _clear_allauth_rate_limits():
    """allauth's own limits (signups, logins per minute per address) live in the shared Redis cache: start each test clean."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(match="*allauth:rl:*"):
            client.delete(key)
    finally:
        client.close()


def verified_user(username: str = "alice", **kwargs) -> User:
    user = UserFactory(username=username, **kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def sign_in(client: Client, login: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": login, "password": password})


def signed_in_as(client: Client) -> str | None:
    uid = client.session.get(SESSION_KEY)
    return User.objects.get(pk=uid).username if uid else None


def link_in(mail, path_prefix: str) -> str:
    found = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s]*)", mail.body)
    assert found, mail.body
    return found.group(1)


# --- Sign-up and verification ------------------------------------------------------------------


def test_signup_creates_an_unverified_address_and_mails_a_link(client, mailoutbox):
    r = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert r.status_code == 302 and r["Location"] == "/accounts/confirm-email/"
    address = EmailAddress.objects.get(email="new@example.com")
    assert address.user.username == "newbie" and not address.verified
    assert signed_in_as(client) is None  # mandatory verification: no session before the link
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new@example.com"]
    assert mailoutbox[0].subject.startswith("[Wharf] ")
    assert "/accounts/confirm-email/" in mailoutbox[0].body


def test_signup_form_errors_are_shown_and_nothing_is_created(client, mailoutbox):
    verified_user("taken")
    r = client.post(
        "/accounts/signup/", {"email": "not-an-email", "username": "taken", "password1": "short", "password2": "other"}
    )
    assert r.status_code == 200
    errors = r.context["form"].errors
    assert {"email", "username", "password1"} <= set(errors), errors
    assert "at least 10 characters" in str(errors["password1"])
    assert b"errorlist" in r.content
    assert not User.objects.filter(email="not-an-email").exists() and mailoutbox == []


def test_unverified_user_cannot_sign_in_and_the_link_verifies(client, mailoutbox):
    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    other = Client()
    r = sign_in(other, "newbie", NEW_PASSWORD)
    assert r.status_code == 302 and r["Location"] == "/accounts/confirm-email/"
    assert signed_in_as(other) is None
    link = link_in(mailoutbox[-1], "/accounts/confirm-email/")
    page = other.get(link)
    assert page.status_code == 200 and b"new@example.com" in page.content  # a button to press, not a GET that confirms
    assert not EmailAddress.objects.get(email="new@example.com").verified
    r = other.post(link)
    assert r.status_code == 302
    assert EmailAddress.objects.get(email="new@example.com").verified
    r = sign_in(Client(), "newbie", NEW_PASSWORD)
    assert r.status_code == 302 and r["Location"] == "/orgs/"


def test_a_forged_verification_key_verifies_nothing(client, mailoutbox):
    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    r = client.post("/accounts/confirm-email/not-a-real-key/")
    assert r.status_code in (200, 404)
    assert not EmailAddress.objects.get(email="new@example.com").verified


# --- Sign-in -----------------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["alice", "alice@example.com", "ALICE@example.com"])
def test_sign_in_by_username_or_email(client, login):
    verified_user()
    r = sign_in(client, login)
    assert r.status_code == 302 and r["Location"] == "/orgs/"
    assert signed_in_as(client) == "alice"
    event = AuditEvent.objects.get(action="login")
    assert event.actor == "alice" and event.detail["channel"] == "dashboard"


def test_wrong_password_says_so_and_is_audited(client):
    verified_user()
    r = sign_in(client, "alice", "wrong")
    assert r.status_code == 200 and signed_in_as(client) is None
    assert b"not correct" in r.content
    assert b'for="id_login">Username or email' in r.content
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor == "alice" and not event.success and str(event.ip) == "127.0.0.1"
    assert event.detail["channel"] == "dashboard"
    assert event.detail["failures"] == {"account_from_address": 1, "address": 1, "account": 1}


@override_settings(GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT=3)
def test_sign_in_is_throttled_with_the_registry_limiter_before_the_password_is_checked(client):
    verified_user()
    for _ in range(3):
        assert b"not correct" in sign_in(client, "alice", "wrong").content
    r = sign_in(client, "alice")  # the right password, refused unchecked
    assert r.status_code == 200 and signed_in_as(client) is None
    assert re.search(rb"Too many failed sign-ins from your address\. Try again in \d+ seconds\.", r.content)
    assert AuditEvent.objects.filter(action="login.failed").count() == 3
    throttled = AuditEvent.objects.get(action="login.throttled")
    assert throttled.actor == "alice" and throttled.detail["channel"] == "dashboard"
    assert throttled.detail["retry_after"] > 0
    # The same window as /auth/token: `docker login` from this address is refused too.
    token = Client().get("/auth/token?service=testserver", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert token.status_code == 429 and int(token["Retry-After"]) > 0


@override_settings(GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT=3)
def test_email_and_registry_failures_share_the_accounts_window(client):
    verified_user()
    for _ in range(2):
        assert Client().get("/auth/token?service=testserver", HTTP_AUTHORIZATION=basic("alice", "wrong")).status_code == 401
    assert b"not correct" in sign_in(client, "alice@example.com", "wrong").content  # counted as alice, the third
    r = sign_in(client, "alice")
    assert b"Too many failed sign-ins" in r.content and signed_in_as(client) is None
    details = [e.detail["channel"] for e in AuditEvent.objects.filter(action="login.failed").order_by("pk")]
    assert details == ["token", "token", "dashboard"]


def test_a_good_password_clears_the_pairs_failures(client):
    verified_user()
    with override_settings(GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT=3):
        sign_in(client, "alice", "wrong")
        sign_in(client, "alice", "wrong")
        assert sign_in(client, "alice").status_code == 302
        client.post("/accounts/logout/")
        sign_in(client, "alice", "wrong")
        sign_in(client, "alice", "wrong")
        assert sign_in(client, "alice").status_code == 302


# --- Passwords ---------------------------------------------------------------------------------


def test_password_change_signs_out_everywhere_and_revokes_docker_logins(client):
    alice = verified_user()
    assert sign_in(client, "alice").status_code == 302
    elsewhere = Client()
    sign_in(elsewhere, "alice")
    refresh_token_issue(principal=principal_for_password(alice), service="testserver")
    epoch = alice.session_epoch
    r = client.post("/accounts/password/change/", {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert r.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD) and alice.session_epoch == epoch + 1
    assert not RefreshToken.objects.filter(user=alice, revoked_at__isnull=True).exists()
    assert elsewhere.get("/orgs/").status_code == 302  # the other browser is signed out
    assert client.get("/orgs/").status_code == 302  # and so is this one (ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE)
    assert sign_in(Client(), "alice", NEW_PASSWORD).status_code == 302


def test_password_change_with_a_wrong_old_password_changes_nothing(client):
    alice = verified_user()
    sign_in(client, "alice")
    r = client.post("/accounts/password/change/", {"oldpassword": "nope", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert r.status_code == 200 and r.context["form"].errors["oldpassword"]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD) and alice.session_epoch == 0


def test_password_reset_by_mail(client, mailoutbox):
    alice = verified_user()
    r = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert r.status_code == 302 and len(mailoutbox) == 1
    link = link_in(mailoutbox[0], "/accounts/password/reset/key/")
    r = client.get(link)
    assert r.status_code == 302  # allauth moves the key into the session
    form_url = r["Location"]
    r = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert r.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="sessions.revoke", target="alice").exists()


def test_password_reset_for_an_unknown_address_sends_no_link(client, mailoutbox):
    r = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert r.status_code == 302  # same answer as for a known address (no enumeration)
    assert all("/accounts/password/reset/key/" not in m.body for m in mailoutbox)


# --- Sign-in with other providers --------------------------------------------------------------

OIDC = {
    "openid_connect": {
        "APPS": [
            {
                "provider_id": "oidc",
                "name": "Acme SSO",
                "client_id": "cid",
                "secret": "s",
                "settings": {"server_url": "https://sso.example.com"},
            }
        ]
    },
    "github": {"APPS": [{"client_id": "gh", "secret": "s"}]},
}


def test_no_provider_buttons_when_none_is_configured(client):
    assert settings.SOCIALACCOUNT_PROVIDERS == {}
    page = client.get("/accounts/login/").content
    assert b"Sign in with GitHub" not in page and b"/accounts/oidc/" not in page and b"/accounts/github/" not in page


def test_configured_providers_appear_on_the_login_page(client):
    with override_settings(SOCIALACCOUNT_PROVIDERS=OIDC):
        page = client.get("/accounts/login/").content
    assert b"Sign in with Acme SSO" in page and b"/accounts/oidc/oidc/login/" in page
    assert b"Sign in with GitHub" in page and b"/accounts/github/login/" in page


def _settings_in_child(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; " + code],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_providers_come_from_the_environment(monkeypatch):
    from gateway.settings import social

    assert social.providers_from_env() == {}
    monkeypatch.setenv("GATEWAY_GITHUB_CLIENT_ID", "gh-id")
    monkeypatch.setenv("GATEWAY_GITHUB_SECRET", "gh-secret")
    monkeypatch.setenv("GATEWAY_OIDC_CLIENT_ID", "oidc-id")
    monkeypatch.setenv("GATEWAY_OIDC_SECRET", "oidc-secret")
    monkeypatch.setenv("GATEWAY_OIDC_SERVER_URL", "https://sso.example.com/realms/acme")
    monkeypatch.setenv("GATEWAY_OIDC_NAME", "Acme SSO")
    got = social.providers_from_env()
    assert got["github"]["APPS"] == [{"client_id": "gh-id", "secret": "gh-secret"}]
    (app,) = got["openid_connect"]["APPS"]
    assert app["provider_id"] == "oidc" and app["name"] == "Acme SSO" and app["client_id"] == "oidc-id"
    assert app["settings"]["server_url"] == "https://sso.example.com/realms/acme"
    monkeypatch.delenv("GATEWAY_GITHUB_SECRET")
    with pytest.raises(Exception, match="GATEWAY_GITHUB_SECRET"):
        social.providers_from_env()


# --- Production settings -----------------------------------------------------------------------


def test_production_cookies_are_secure_and_http_only(tmp_path):
    env = {
        "DJANGO_SETTINGS_MODULE": "gateway.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "GATEWAY_TOKEN_KEYS_DIR": str(tmp_path),
        "GATEWAY_ENCRYPTION_KEY": "e" * 40,
    }
    code = (
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY, "
        "settings.CSRF_COOKIE_HTTPONLY, settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL, settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN, "
        "settings.ACCOUNT_RATE_LIMITS, settings.ACCOUNT_EMAIL_VERIFICATION)"
    )
    done = _settings_in_child(env, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("{")[0].split() == ["True", "True", "True", "True", "https", "False"]
    assert "{'login_failed': None} mandatory" in done.stdout
