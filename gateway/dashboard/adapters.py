"""django-allauth's account adapter: the dashboard's sign-in uses the registry's login throttle and audit (docs/decisions/0030).

- Before a password is checked, `accounts.logins.login_throttle_enforce` refuses an attempt whose
  (account, address) or address is over the limit — the same Redis windows /auth/token and Basic
  on /v2/ count in (accounts/ratelimit.py, decisions/0009), so failures in one place slow the
  other. The account is the username: a login by email counts against the username that
  address belongs to (when it belongs to one), so typing the email does not buy a second window.
- A wrong password is counted and audited as `login.failed` (channel "dashboard"); a right one
  clears the pair's count like the registry's; a completed sign-in (after MFA) is audited as `login`.
- A password set by change or reset also ends `docker login` sessions (`user_sessions_revoke`:
  refresh tokens revoked, bearer tokens' epoch bumped); allauth logs the browser sessions out.
- Sign-in providers are the environment's only (settings/social.py): SocialApp rows are ignored.
  A sign-in through OpenID Connect or GitHub is audited with its provider (`detail.provider`); one
  that fails (refused, forged state, an answer that does not verify) is logged for the operator,
  since the person only sees a page saying it did not complete (docs/decisions/0038).
"""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import filter_users_by_email
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django import forms
from django.http import HttpRequest, HttpResponse

from accounts import ratelimit
from accounts.audit import audit_record
from accounts.logins import LoginThrottled, login_failure_record, login_throttle_enforce
from accounts.sessions import user_sessions_revoke
from gateway.core.addresses import client_ip  # the address as the registry sees it (decisions/0009)

WHERE = {"service": "dashboard", "channel": "dashboard"}
logger = logging.getLogger(__name__)


def _user_agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:300]


def account_name(credentials: dict[str, Any]) -> str:
    """The name a sign-in attempt is throttled under: the username, also when the login was an email address of an account."""
    email = credentials.get("email")
    if email:
        users = filter_users_by_email(email, is_active=True, prefer_verified=True)
        if len(users) == 1:
            return users[0].get_username()
        return str(email)
    return str(credentials.get("username") or "")


class AccountAdapter(DefaultAccountAdapter):
    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # allauth's own `login_failed` limit is off (ACCOUNT_RATE_LIMITS): this is it, shared with the registry.
        try:
            login_throttle_enforce(
                account=account_name(credentials), ip=client_ip(request), user_agent=_user_agent(request), where=WHERE
            )
        except LoginThrottled as exc:
            raise forms.ValidationError(
                f"Too many failed sign-ins from your address. Try again in {exc.retry_after} seconds.",
                code="too_many_login_attempts",
            ) from exc

    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        user = super().authenticate(request, **credentials)
        if user is not None:
            ratelimit.login_succeeded(ip=client_ip(request), account=account_name(credentials))
        return user

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        login_failure_record(
            account=account_name(credentials), ip=client_ip(request), user_agent=_user_agent(request), where=WHERE
        )

    def post_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse:
        response = super().post_login(request, user, **kwargs)
        detail = {**WHERE, "signup": bool(kwargs.get("signup"))}
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        if sociallogin is not None:
            detail["provider"] = sociallogin.account.provider
        audit_record(
            action="login", actor=user.get_username(), ip=client_ip(request), user_agent=_user_agent(request), detail=detail
        )
        return response

    def set_password(self, user: Any, password: str) -> None:
        super().set_password(user, password)
        user_sessions_revoke(user=user, actor=user.get_username())


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest, provider: str | None = None, client_id: str | None = None) -> list[Any]:
        # Providers come from the environment only (decisions/0030): a SocialApp row (the Django admin offers
        # them) is ignored, so it can neither add a provider nor duplicate one (allauth: MultipleObjectsReturned, a 500).
        return [app for app in super().list_apps(request, provider=provider, client_id=client_id) if app.pk is None]

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: str | None = None,
        exception: Exception | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> None:
        # The page says only that it did not complete; the operator needs the why (a wrong secret, a clock, a forged state).
        logger.warning(
            "sign-in with %s failed: %s%s (from %s)",
            getattr(provider, "sub_id", provider),
            error or "unknown",
            f": {exception!r}" if exception is not None else "",
            client_ip(request),
        )
        super().on_authentication_error(request, provider, error=error, exception=exception, extra_context=extra_context)
