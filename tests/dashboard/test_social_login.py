"""Sign-in with OpenID Connect and GitHub through the test client: the providers the environment configures
(GATEWAY_OIDC_*, GATEWAY_GITHUB_*) are working allauth apps that redirect to the stand-in providers'
authorize URLs (tests/oidc_standin.py), and an id_token that does not verify signs nobody in and creates
nothing. The browser flows are tests/browser/test_social_login.py (docs/decisions/0038)."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from accounts.models import User
from gateway.settings import social
from tests.dashboard.test_accounts import _clear_allauth_rate_limits, _settings_in_child
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# allauth's limits (signups per minute per address) are in the shared Redis: clean per test.
__all__ = ["_clear_allauth_rate_limits"]

OIDC_LOGIN = "/accounts/oidc/oidc/login/"
GITHUB_LOGIN = "/accounts/github/login/"


@pytest.fixture
def providers(identity_providers, monkeypatch):
    """SOCIALACCOUNT_PROVIDERS as settings/social.py builds it from the stand-ins' environment, in force."""
    for name, value in identity_providers.env().items():
        monkeypatch.setenv(name, value)
    identity_providers.register("http://testserver")
    with override_settings(SOCIALACCOUNT_PROVIDERS=social.providers_from_env()):
        yield identity_providers
    identity_providers.oidc.tamper = {}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_the_environments_providers_redirect_to_their_authorize_urls(client, providers):
    page = client.get("/accounts/login/").content.decode()
    assert f'href="{OIDC_LOGIN}?process=login"' in page and f'href="{GITHUB_LOGIN}?process=login"' in page
    assert "Sign in with Stand-in SSO" in page

    answer = client.post(OIDC_LOGIN)
    assert answer.status_code == 302
    location = answer["Location"]
    assert location.startswith(providers.oidc.url + "/authorize?")
    params = query(location)
    assert params["client_id"] == providers.oidc.client_id
    assert params["redirect_uri"] == "http://testserver/accounts/oidc/oidc/login/callback/"
    assert params["response_type"] == "code" and set(params["scope"].split()) == {"openid", "profile", "email"}
    assert len(params["state"]) >= 12
    # allauth's generic OIDC provider sends no nonce; the state and PKCE bind the answer to this browser instead.
    assert "nonce" not in params
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43

    answer = client.post(GITHUB_LOGIN)
    assert answer.status_code == 302
    # allauth's GitHub adapter took its URLs from the settings at import: github.com in this process
    # (GATEWAY_GITHUB_URL is checked in a child process below and by the live server in the browser tests).
    assert answer["Location"].startswith(GitHubOAuth2Adapter.authorize_url + "?")
    params = query(answer["Location"])
    assert params["client_id"] == providers.github.client_id and params["state"]
    assert set(params["scope"].split()) == {"read:user", "user:email"}
    assert params["redirect_uri"] == "http://testserver/accounts/github/login/callback/"


def test_socialapp_rows_neither_add_nor_duplicate_a_provider(client, providers):
    SocialApp.objects.create(provider="github", name="GitHub (admin)", client_id="row-id", secret="row-secret")
    SocialApp.objects.create(provider="openid_connect", provider_id="other", name="Row SSO", client_id="x", secret="y")
    page = client.get("/accounts/login/").content.decode()
    assert page.count('data-provider="github"') == 1 and "Row SSO" not in page
    answer = client.post(GITHUB_LOGIN)
    assert answer.status_code == 302 and query(answer["Location"])["client_id"] == providers.github.client_id
    assert client.post("/accounts/oidc/other/login/").status_code == 404


def test_a_github_enterprise_url_is_where_sign_in_goes(identity_providers):
    env = {**identity_providers.env(), "GATEWAY_OIDC_SERVER_URL": "https://sso.example.com/realms/acme"}
    done = _settings_in_child(
        env,
        "from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter as A; "
        "print(A.authorize_url, A.access_token_url, A.profile_url, A.emails_url); "
        "print(' '.join(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']))",
    )
    assert done.returncode == 0, done.stderr
    urls, form_action = done.stdout.strip().splitlines()
    gh = identity_providers.github.url
    assert urls.split() == [
        f"{gh}/login/oauth/authorize",
        f"{gh}/login/oauth/access_token",
        f"{gh}/api/v3/user",
        f"{gh}/api/v3/user/emails",
    ]
    # The sign-in form's redirect to each provider is allowed by the CSP, and nothing else is.
    assert form_action.split() == ["'self'", gh, "https://sso.example.com"]


def test_github_settings_refuse_bad_input(monkeypatch):
    monkeypatch.setenv("GATEWAY_GITHUB_URL", "https://github.example.com/")
    with pytest.raises(ImproperlyConfigured, match="without GATEWAY_GITHUB_CLIENT_ID"):
        social.providers_from_env()
    monkeypatch.setenv("GATEWAY_GITHUB_CLIENT_ID", "gh")
    monkeypatch.setenv("GATEWAY_GITHUB_SECRET", "s")
    assert social.providers_from_env()["github"]["GITHUB_URL"] == "https://github.example.com"
    monkeypatch.setenv("GATEWAY_GITHUB_URL", "ftp://github.example.com")
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_GITHUB_URL must be a https or http URL"):
        social.providers_from_env()
    monkeypatch.delenv("GATEWAY_GITHUB_URL")
    assert "GITHUB_URL" not in social.providers_from_env()["github"]
    assert social.form_action_origins(social.providers_from_env()) == ["https://github.com"]


def sign_in_through_provider(client, idp, *, username: str, email: str, verified: bool = True):
    """The whole code flow with the test client as the browser: Wharf's button, the provider's form, the callback."""
    to_provider = client.post(OIDC_LOGIN)["Location"]
    form = requests.get(to_provider, timeout=5)
    assert form.status_code == 200 and "Sign in and allow" in form.text
    answer = requests.post(
        idp.oidc.url + "/authorize",
        data={**query(to_provider), "username": username, "email": email, "decision": "allow"}
        | ({"email_verified": "true"} if verified else {}),
        allow_redirects=False,
        timeout=5,
    )
    back = answer.headers["Location"]
    assert back.startswith("http://testserver/accounts/oidc/oidc/login/callback/?")
    return client.get(back.removeprefix("http://testserver")), query(to_provider)


def test_the_code_flow_signs_a_new_person_up_with_pkce(client, providers):
    answer, sent = sign_in_through_provider(client, providers, username="pat", email="pat@example.com")
    assert answer.status_code == 302 and answer["Location"] == "/orgs/"
    user = User.objects.get(username="pat")
    assert EmailAddress.objects.get(user=user).verified
    assert SocialAccount.objects.get(user=user).uid == "sub-pat"
    verifier = providers.oidc.token_requests[-1]["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == sent["code_challenge"]
    assert providers.oidc.token_requests[-1]["client_secret"] == providers.oidc.secret


def test_the_stand_ins_id_token_verifies_against_its_jwks_with_allauths_own_check(providers):
    """allauth skips the signature in the code flow (OIDC Core 3.1.3.7) but checks it for tokens handed to it: the stand-in signs for real."""
    from allauth.socialaccount.internal import jwtkit
    from allauth.socialaccount.providers.oauth2.client import OAuth2Error

    idp = providers.oidc
    token = idp.id_token({"sub": "sub-v", "email": "v@example.com", "email_verified": True}, nonce="n-1")
    check = {"keys_url": idp.url + "/jwks", "issuer": idp.url, "lookup_kid": jwtkit.lookup_kid_jwk}
    claims = jwtkit.verify_and_decode(credential=token, audience=idp.client_id, **check)
    assert (claims["sub"], claims["nonce"], claims["aud"]) == ("sub-v", "n-1", idp.client_id)
    header, payload, signature = token.split(".")
    forged = ".".join([header, base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode(), signature])
    with pytest.raises(OAuth2Error, match="Invalid id_token"):
        jwtkit.verify_and_decode(credential=forged, audience=idp.client_id, **check)


@pytest.mark.parametrize(
    "tamper",
    [
        {"aud": "some-other-client"},
        {"iss": "http://127.0.0.1:9/not-the-issuer"},
        {"exp": int(time.time()) - 3600},
    ],
    ids=["audience", "issuer", "expired"],
)
def test_an_id_token_that_does_not_verify_signs_nobody_in(client, providers, tamper, caplog):
    providers.oidc.tamper = tamper
    before = User.objects.count(), SocialAccount.objects.count(), EmailAddress.objects.count()
    answer, _ = sign_in_through_provider(client, providers, username="tess", email="tess@example.com")
    assert answer.status_code == 401
    page = answer.content.decode()
    assert "Sign-in with Stand-in SSO did not complete" in page and "could not be verified" in page
    assert "Nothing was changed and no account was created." in page
    assert (User.objects.count(), SocialAccount.objects.count(), EmailAddress.objects.count()) == before
    assert "_auth_user_id" not in client.session
    assert "sign-in with oidc failed: unknown: OAuth2Error('Invalid id_token')" in caplog.text


def test_a_wrong_client_secret_is_a_clear_failure(client, providers, caplog):
    app = dict(social.providers_from_env()["openid_connect"]["APPS"][0], secret="not-the-secret")
    with override_settings(SOCIALACCOUNT_PROVIDERS={"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [app]}}):
        answer, _ = sign_in_through_provider(client, providers, username="sam", email="sam@example.com")
    assert answer.status_code == 401 and b"could not be verified" in answer.content
    assert not User.objects.filter(username="sam").exists()
    assert "invalid_client" in caplog.text


def test_a_provider_error_is_a_clear_failure(client, providers):
    state = query(client.post(OIDC_LOGIN)["Location"])["state"]
    answer = client.get(OIDC_LOGIN + "callback/", {"error": "server_error", "state": state})
    assert answer.status_code == 401
    assert b"Stand-in SSO did not confirm who you are" in answer.content and b"no account was created" in answer.content
    assert User.objects.count() == 0


def test_the_connections_page_is_the_signed_in_users_own(client, providers):
    assert client.get("/accounts/3rdparty/")["Location"].startswith("/accounts/login/")
    owner, other = UserFactory(username="owner"), UserFactory(username="other")
    theirs = SocialAccount.objects.create(user=other, provider="oidc", uid="sub-other")
    client.force_login(owner)
    page = client.get("/accounts/3rdparty/").content.decode()
    assert "sub-other" not in page and "no third-party accounts connected" in page
    # Removing someone else's connection by its id is refused and removes nothing.
    answer = client.post("/accounts/3rdparty/", {"account": theirs.pk})
    assert answer.status_code == 200 and "Select a valid choice" in str(answer.context["form"].errors["account"])
    assert SocialAccount.objects.filter(pk=theirs.pk, user=other).exists()
