"""Sign-in with another identity provider (django-allauth socialaccount), configured from the environment only.

A provider is offered only when its client id and secret are both set; one of the two alone is a
configuration mistake and refuses to start. No SocialApp rows in the database: what the
environment says is all there is (docs/decisions/0030).

- Generic OpenID Connect: GATEWAY_OIDC_CLIENT_ID, GATEWAY_OIDC_SECRET, GATEWAY_OIDC_SERVER_URL
  (the issuer; its /.well-known/openid-configuration is read), GATEWAY_OIDC_NAME (the button's
  label, default "Single sign-on").
- GitHub: GATEWAY_GITHUB_CLIENT_ID, GATEWAY_GITHUB_SECRET.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from gateway.settings import env as E

OIDC_PROVIDER_ID = "oidc"  # the login URL is /accounts/oidc/oidc/login/


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
    if github is not None:
        providers["github"] = {
            "SCOPE": ["read:user", "user:email"],
            "APPS": [{"client_id": github[0], "secret": github[1]}],
        }
    return providers
