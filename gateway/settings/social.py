"""Sign-in with another identity provider (django-allauth socialaccount), configured from the environment only.

A provider is offered only when its client id and secret are both set; one of the two alone is a
configuration mistake and refuses to start. No SocialApp rows in the database (the social adapter ignores them): what the
environment says is all there is (docs/decisions/0030).

- Generic OpenID Connect: GATEWAY_OIDC_CLIENT_ID, GATEWAY_OIDC_SECRET, GATEWAY_OIDC_SERVER_URL
  (the issuer; its /.well-known/openid-configuration is read), GATEWAY_OIDC_NAME (the button's
  label, default "Single sign-on").
- GitHub: GATEWAY_GITHUB_CLIENT_ID, GATEWAY_GITHUB_SECRET, and GATEWAY_GITHUB_URL for GitHub Enterprise
  Server (its web address, e.g. https://github.example.com; the API is <url>/api/v3). Unset: github.com.

The browser follows the sign-in form's redirect to the provider, and a CSP `form-action` applies to
that redirect too: `form_action_origins` adds each provider's sign-in origin to it (docs/decisions/0038).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from gateway.settings import env as E

OIDC_PROVIDER_ID = "oidc"  # the login URL is /accounts/oidc/oidc/login/
GITHUB_WEB_URL = "https://github.com"


def _pair(prefix: str) -> tuple[str, str] | None:
    client_id = E.string(f"{prefix}_CLIENT_ID", "").strip()
    secret = E.string(f"{prefix}_SECRET", "").strip()
    if not client_id and not secret:
        return None
    if not (client_id and secret):
        raise ImproperlyConfigured(f"Set both {prefix}_CLIENT_ID and {prefix}_SECRET, or neither.")
    return client_id, secret


def providers_from_env() -> dict[str, Any]:
    """SOCIALACCOUNT_PROVIDERS for the providers the environment configures (empty when none)."""
    providers: dict[str, Any] = {}
    oidc = _pair("GATEWAY_OIDC")
    if oidc is not None:
        server_url = E.url("GATEWAY_OIDC_SERVER_URL", None, schemes=("https", "http"))
        providers["openid_connect"] = {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": OIDC_PROVIDER_ID,
                    "name": E.string("GATEWAY_OIDC_NAME", "Single sign-on").strip() or "Single sign-on",
                    "client_id": oidc[0],
                    "secret": oidc[1],
                    "settings": {"server_url": server_url},
                }
            ],
        }
    github = _pair("GATEWAY_GITHUB")
    if github is None and E.raw("GATEWAY_GITHUB_URL", ""):
        raise ImproperlyConfigured("GATEWAY_GITHUB_URL is set without GATEWAY_GITHUB_CLIENT_ID and GATEWAY_GITHUB_SECRET.")
    if github is not None:
        providers["github"] = {
            "SCOPE": ["read:user", "user:email"],
            "APPS": [{"client_id": github[0], "secret": github[1]}],
        }
        # allauth's GitHub adapter reads GITHUB_URL once, when it is imported: settings only, never a SocialApp row.
        enterprise = E.raw("GATEWAY_GITHUB_URL", "")
        if enterprise:
            providers["github"]["GITHUB_URL"] = E.url("GATEWAY_GITHUB_URL", None, schemes=("https", "http")).rstrip("/")
    return providers


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def form_action_origins(providers: dict[str, Any]) -> list[str]:
    """The origins the "Continue" form of a provider's sign-in redirects to (the OIDC issuer's, GitHub's).

    An OIDC provider whose authorization endpoint is on another origin than its issuer is not covered.
    """
    origins = [_origin(app["settings"]["server_url"]) for app in providers.get("openid_connect", {}).get("APPS", [])]
    if "github" in providers:
        origins.append(_origin(providers["github"].get("GITHUB_URL", GITHUB_WEB_URL)))
    return sorted(set(origins))
