"""Accounts in real Chromium against the live server: sign up and verify by the mailed link, TOTP, sessions."""

from __future__ import annotations

import re

import pyotp
import pytest
from allauth.account.models import EmailAddress

from tests.browser.conftest import axe_check, csp_violations
from tests.browser.mail import wait_for_mail
from tests.dashboard.test_accounts import _clear_allauth_rate_limits
from tests.factories import UserFactory

PASSWORD = "pw-secret-123"


# allauth's limits (signups and logins per minute per address) are in the Redis the live server shares: clean per test.
__all__ = ["_clear_allauth_rate_limits"]  # autouse here too


@pytest.fixture(autouse=True)
def _short_timeouts(page):
    page.set_default_timeout(8000)


def checked(page) -> None:
    """Every page the tests open: no serious or critical axe violation."""
    axe_check(page)


def sign_in_with_form(page, login: str, password: str = PASSWORD, *, check: bool = False) -> None:
    page.goto("/accounts/login/")
    if check:
        checked(page)
    page.get_by_label("Username or email").fill(login)
    page.get_by_label("Password:", exact=True).fill(password)
    page.get_by_role("button", name="Sign In", exact=True).click()


def test_sign_up_verify_by_mailed_link_and_land_on_the_dashboard(page, live):
    page.goto("/")
    assert page.url.endswith("/accounts/login/")
    checked(page)
    page.get_by_role("link", name="sign up").click()
    checked(page)
    page.get_by_label("Email:", exact=True).fill("newbie@example.com")
    page.get_by_label("Username:", exact=True).fill("newbie")
    page.get_by_label("Password:", exact=True).fill("a-long-enough-passphrase-7")
    page.get_by_label("Password (again):", exact=True).fill("a-long-enough-passphrase-7")
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url("**/accounts/confirm-email/")
    assert "Verify Your Email Address" in page.content()
    checked(page)

    mail = wait_for_mail(live, to="newbie@example.com", subject_contains="Confirm")
    (link,) = [u for u in mail.links() if "/accounts/confirm-email/" in u]
    assert link.startswith(live.url)  # the live server's own address, as the browser reaches it
    page.goto(link)
    assert "newbie@example.com" in page.content()
    checked(page)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/orgs/")
    assert page.get_by_role("link", name="newbie").is_visible()
    checked(page)
    assert EmailAddress.objects.get(email="newbie@example.com").verified
    assert csp_violations(page) == []


def test_enable_totp_and_sign_in_with_a_code(page, live, new_context):
    alice = UserFactory(username="alice")
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True, primary=True)
    sign_in_with_form(page, "alice", check=True)
    page.wait_for_url("**/orgs/")
    page.get_by_role("link", name="Security").click()
    checked(page)
    page.get_by_role("link", name="Activate").click()
    page.wait_for_url("**/accounts/reauthenticate/**")
    checked(page)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    checked(page)
    secret = page.get_by_label("Authenticator secret").input_value()
    assert page.get_by_role("button", name="Copy secret").is_visible()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    page.get_by_label("Authenticator code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url("**/accounts/2fa/recovery-codes/**")
    assert "Authenticator app activated" in page.content()
    assert page.get_by_role("button", name="Copy codes").is_visible()
    assert len(page.get_by_label("Unused codes").input_value().split()) == 10
    checked(page)
    assert csp_violations(page) == []

    other = new_context().new_page()
    other.csp_errors = []
    other.on("console", lambda msg: other.csp_errors.append(msg.text) if msg.type == "error" else None)
    sign_in_with_form(other, "alice")
    other.wait_for_url("**/accounts/2fa/authenticate/")
    checked(other)
    other.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    other.get_by_role("button", name="Sign In", exact=True).click()
    other.wait_for_url("**/orgs/")
    assert other.get_by_role("link", name="alice").is_visible()
    assert csp_violations(other) == []


def test_sessions_page_signs_out_the_other_browser(page, live, new_context):
    alice = UserFactory(username="alice")
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True, primary=True)
    phone = new_context(phone=True).new_page()
    sign_in_with_form(phone, "alice")
    phone.wait_for_url("**/orgs/")
    sign_in_with_form(page, "alice")
    page.wait_for_url("**/orgs/")
    page.get_by_role("link", name="Sessions").click()
    page.wait_for_url("**/accounts/sessions/")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 2
    assert page.locator("tr.current").count() == 1
    checked(page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign out everywhere else").click()
    page.wait_for_url("**/accounts/sessions/")
    assert "Signed out everywhere else" in page.content()
    assert page.locator("table.sessions tbody tr").count() == 1
    checked(page)
    phone.goto("/orgs/")
    assert "/accounts/login/" in phone.url
    assert csp_violations(page) == []


def test_passkey_added_with_a_virtual_authenticator_signs_in_without_a_password(page, live):
    """WebAuthn needs a domain for its relying party (not an IP address), so this test uses http://localhost."""
    alice = UserFactory(username="alice")
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True, primary=True)
    base = f"http://localhost:{live.port}"
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.goto(base + "/accounts/login/")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign In", exact=True).click()
    page.wait_for_url("**/orgs/")
    page.goto(base + "/accounts/2fa/webauthn/add/")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/accounts/2fa/webauthn/add/")
    checked(page)
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_url(re.compile(r".*/accounts/2fa/(recovery-codes|webauthn)/?$"))
    assert alice.authenticator_set.filter(type="webauthn").count() == 1
    page.locator("header").get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/accounts/login/")
    page.goto(base + "/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/orgs/")
    assert page.get_by_role("link", name="alice").is_visible()
    checked(page)
    assert csp_violations(page) == []
