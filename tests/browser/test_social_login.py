"""Sign-in with OpenID Connect and GitHub in real Chromium: allauth's real provider code against the session's
stand-in providers (tests/oidc_standin.py), which the live server is configured with through GATEWAY_OIDC_* and
GATEWAY_GITHUB_* (tests/conftest.py `wharf`; docs/decisions/0038).

What a person types on the provider's consent page (username, email, "verified") decides who the provider says
they are, so the tests cover: a new person, the same person again, a provider asserting the (verified or not)
email of an existing local account (refused: never signed into that account), a new person with an unverified
email (the mailed link first), a forged state and a refusal (clear pages, nothing created), GitHub, and the
connections page (see, connect, remove; the last way in of an account without a password stays).
"""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount

from accounts.models import AuditEvent, User
from tests.browser.conftest import axe_check, csp_violations, screenshot, sign_in, watch_console
from tests.browser.mail import mails, wait_for_mail
from tests.browser.test_accounts import _short_timeouts
from tests.dashboard.test_accounts import _clear_allauth_rate_limits
from tests.factories import UserFactory

SSO = "Stand-in SSO"
GITHUB = "GitHub"

# allauth's limits (signups and logins per minute per address) are in the Redis the live server shares: clean per test.
__all__ = ["_clear_allauth_rate_limits", "_short_timeouts"]  # autouse here too


def checked(page) -> None:
    axe_check(page)
    assert csp_violations(page) == []


def start_provider_sign_in(page, provider: str, *, start: str = "/accounts/login/", verb: str = "Sign in with") -> None:
    """From `start`, click the provider's button and allauth's "Continue": the browser is then on the provider's page."""
    page.goto(start)
    page.get_by_role("link", name=f"{verb} {provider}").click()
    checked(page)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/authorize?**")


def consent(page, *, username: str, email: str, verified: bool = True, allow: bool = True) -> None:
    """Fill in the provider's login + consent form and answer it."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Email address verified").set_checked(verified)
    page.get_by_role("button", name="Sign in and allow" if allow else "Deny").click()


def provider_sign_in(page, provider: str, **person) -> None:
    start_provider_sign_in(page, provider)
    consent(page, **person)


def signed_in(page) -> bool:
    """Whether the browser's session is signed in (the dashboard does not send it to the login page)."""
    page.goto("/orgs/")
    return "/accounts/login/" not in page.url


def nothing_created(before: tuple[int, int, int]) -> bool:
    return (User.objects.count(), SocialAccount.objects.count(), EmailAddress.objects.count()) == before


def counts() -> tuple[int, int, int]:
    return User.objects.count(), SocialAccount.objects.count(), EmailAddress.objects.count()


def test_oidc_new_person_gets_an_account_then_signs_in_to_the_same_one(page, live, identity_providers, new_context):
    page.goto("/accounts/login/")
    buttons = page.locator("ul.providers")
    assert buttons.get_by_role("link", name=f"Sign in with {SSO}").is_visible()
    assert buttons.get_by_role("link", name=f"Sign in with {GITHUB}").is_visible()
    checked(page)
    screenshot(page, "social_login_buttons")

    provider_sign_in(page, SSO, username="olivia", email="olivia@example.com")
    page.wait_for_url("**/orgs/")
    checked(page)
    user = User.objects.get(username="olivia")
    assert not user.has_usable_password()
    (address,) = EmailAddress.objects.filter(user=user)
    assert (address.email, address.verified, address.primary) == ("olivia@example.com", True, True)
    (account,) = SocialAccount.objects.filter(user=user)
    assert (account.provider, account.uid) == ("oidc", "sub-olivia")
    # The provider said the address is verified: no verification mail of our own.
    assert not [m for m in mails(live.mail_dir) if "olivia@example.com" in m.to]
    # PKCE: the token request carried the verifier of the challenge the stand-in checked.
    assert identity_providers.oidc.token_requests[-1]["code_verifier"]
    assert AuditEvent.objects.filter(action="login", actor="olivia", detail__provider="oidc", detail__signup=True).exists()

    second = watch_console(new_context().new_page())
    second.set_default_timeout(8000)
    provider_sign_in(second, SSO, username="olivia", email="olivia@example.com")
    second.wait_for_url("**/orgs/")
    assert User.objects.filter(email="olivia@example.com").count() == 1
    assert SocialAccount.objects.filter(uid="sub-olivia").count() == 1
    assert AuditEvent.objects.filter(action="login", actor="olivia", detail__signup=False).count() == 1


@pytest.mark.parametrize("verified", [True, False], ids=["verified", "unverified"])
def test_oidc_email_of_an_existing_account_never_signs_into_it(page, live, verified):
    erin = UserFactory(username="erin", email="erin@example.com")
    EmailAddress.objects.create(user=erin, email="erin@example.com", verified=True, primary=True)
    before = counts()

    provider_sign_in(page, SSO, username="mallory", email="erin@example.com", verified=verified)
    # Refused as allauth does it with enumeration prevention: the page reads like a sign-up waiting for its
    # mail, and the mail goes to the address's owner, who did not ask for it and is told so.
    page.wait_for_url("**/accounts/confirm-email/")
    assert "Verify Your Email Address" in page.content()
    checked(page)
    assert not signed_in(page)
    assert nothing_created(before)
    assert not SocialAccount.objects.filter(user=erin).exists()
    mail = wait_for_mail(live, to="erin@example.com", subject_contains="Account Already Exists")
    assert "erin" in mail.body


def test_oidc_new_person_with_an_unverified_email_must_confirm_it_first(page, live):
    provider_sign_in(page, SSO, username="uma", email="uma@example.com", verified=False)
    page.wait_for_url("**/accounts/confirm-email/")
    checked(page)
    assert not signed_in(page)
    assert not EmailAddress.objects.get(email="uma@example.com").verified
    mail = wait_for_mail(live, to="uma@example.com", subject_contains="Confirm")
    (link,) = [u for u in mail.links() if "/accounts/confirm-email/" in u]
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/orgs/")
    assert EmailAddress.objects.get(email="uma@example.com").verified


def test_a_forged_state_or_a_refusal_shows_a_clear_page_and_creates_nothing(page, live):
    before = counts()
    start_provider_sign_in(page, SSO)
    page.locator("input[name=state]").evaluate("el => el.value = 'forged-by-someone-else'")
    consent(page, username="fiona", email="fiona@example.com")
    page.wait_for_url("**/accounts/oidc/oidc/login/callback/**")
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == f"Sign-in with {SSO} did not complete"
    assert "not started in this browser" in page.content()
    checked(page)
    assert nothing_created(before) and not signed_in(page)

    start_provider_sign_in(page, SSO)
    consent(page, username="fiona", email="fiona@example.com", allow=False)
    page.wait_for_url("**/accounts/3rdparty/login/cancelled/")
    assert page.get_by_role("heading", level=1).inner_text() == "Sign-in cancelled"
    assert "Nothing was changed and no account was created." in page.content()
    checked(page)
    assert nothing_created(before) and not signed_in(page)


def test_github_new_person_signs_in_and_a_refusal_creates_nothing(page, live, identity_providers):
    before = counts()
    start_provider_sign_in(page, GITHUB)
    assert page.url.startswith(identity_providers.github.url + "/login/oauth/authorize?")
    consent(page, username="gail", email="gail@example.com", allow=False)
    page.wait_for_url("**/accounts/3rdparty/login/cancelled/")
    assert nothing_created(before)

    provider_sign_in(page, GITHUB, username="gail", email="gail@example.com")
    page.wait_for_url("**/orgs/")
    checked(page)
    (account,) = SocialAccount.objects.filter(provider="github")
    assert account.user.username == "gail" and account.extra_data["login"] == "gail"
    assert EmailAddress.objects.get(user=account.user).verified
    assert not [m for m in mails(live.mail_dir) if "gail@example.com" in m.to]


def test_connections_page_connects_lists_and_removes_a_provider(page, live):
    hana = UserFactory(username="hana", email="hana@example.com")
    EmailAddress.objects.create(user=hana, email="hana@example.com", verified=True, primary=True)
    sign_in(page, hana)
    page.goto("/accounts/3rdparty/")
    checked(page)
    assert "no third-party accounts connected" in page.content()

    start_provider_sign_in(page, GITHUB, start="/accounts/3rdparty/", verb="Connect")
    consent(page, username="hana-gh", email="hana@example.com")
    page.wait_for_url("**/accounts/3rdparty/")
    checked(page)
    (account,) = SocialAccount.objects.filter(user=hana)
    assert account.provider == "github"
    page.get_by_role("radio").check()
    # (No password asked again: connecting just now was a fresh sign-in with the provider.)
    with page.expect_navigation():
        page.get_by_role("button", name="Remove").click()
    assert "The third-party account has been disconnected." in page.content()
    assert not SocialAccount.objects.filter(user=hana).exists()


def test_the_only_way_into_an_account_without_a_password_cannot_be_removed(page, live):
    provider_sign_in(page, SSO, username="ivan", email="ivan@example.com")
    page.wait_for_url("**/orgs/")
    page.goto("/accounts/3rdparty/")
    assert page.get_by_role("radio").count() == 1
    page.get_by_role("radio").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Remove").click()
    assert "Your account has no password set up." in page.content()
    checked(page)
    assert SocialAccount.objects.filter(user__username="ivan").count() == 1
