"""The one throttled, audited path for checking a credential a client sends (docs/decisions/0009).

/auth/token (Basic on GET, the OAuth2 password grant on POST) and HTTP Basic on /v2/ call
`credentials_authenticate`; the refresh-token grant calls `refresh_token_authenticate`.

- Personal access tokens and robot secrets (256-bit randoms with a known prefix, looked up by
  hash) are never throttled and never tried as passwords: guessing one is hopeless, and an
  attacker hammering a password must not break `docker login`, CI or deploys. Their failures
  (a revoked token in a forgotten CI job) do not count towards the password limits; they are
  counted per address and audited on the 1st, 2nd, 4th, … of a window. Refresh tokens: never
  throttled, every failure audited.
- Passwords are throttled per (account, client address) and per address (accounts.ratelimit),
  never per account alone, so nobody can lock an owner out from elsewhere. A throttled
  attempt is refused before the password is looked at (429 + Retry-After).
- Every failed password is audited (`login.failed`, with the window's counts: this account from this
  address, this address, this account from anywhere); throttled attempts are audited as
  `login.throttled` on the 1st, 2nd, 4th, 8th, … of a window (with the count), so a flood
  costs a handful of rows, not one per request.
"""

from __future__ import annotations

from accounts import ratelimit
from accounts.principals import Principal
from accounts.selectors import (
    bearer_secret_check,
    is_token_secret,
    password_check,
    token_credentials_check,
    username_acceptable,
)
from accounts.services import audit_record
from accounts.sessions import refresh_token_check
from gateway.core.errors import ApplicationError

MAX_ACTOR_LENGTH = 150


class LoginFailed(ApplicationError):
    """Wrong, unknown or malformed credentials (the message never says which)."""

    status = 401
    code = "UNAUTHORIZED"


class LoginThrottled(ApplicationError):
    """Too many failed passwords from this address (for this account); retry after `retry_after` seconds."""

    status = 429
    code = "TOOMANYREQUESTS"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def _sampled(count: int) -> bool:
    return count > 0 and count & (count - 1) == 0  # 1, 2, 4, 8, ...


def credentials_authenticate(
    *, username: str, secret: str, ip: str, user_agent: str = "", service: str, channel: str, record_success: bool = False
) -> Principal:
    """The principal Basic/password credentials name; LoginFailed or LoginThrottled otherwise; every failure audited (token ones sampled).

    `channel` says where the credentials came ("token" for /auth/token, "v2" for Basic on
    /v2/); `record_success` writes a `login` event (what `docker login` does once per session).
    """
    actor = (username or "")[:MAX_ACTOR_LENGTH]
    where = {"service": service, "channel": channel}
    if is_token_secret(secret):  # a token or robot secret: never throttled, never tried as a password
        found = token_credentials_check(username=username, secret=secret)
        if found is None:
            _token_failed(actor=actor, ip=ip, user_agent=user_agent, where=where)
            raise LoginFailed("invalid username or password")
        return _succeeded(found, ip=ip, user_agent=user_agent, detail=where, record=record_success)
    login_throttle_enforce(account=username, ip=ip, user_agent=user_agent, where=where)
    principal = password_check(username=username, password=secret) if username_acceptable(username) else None
    if principal is None:
        login_failure_record(account=username, ip=ip, user_agent=user_agent, where=where)
        raise LoginFailed("invalid username or password")
    ratelimit.login_succeeded(ip=ip, account=username)
    return _succeeded(principal, ip=ip, user_agent=user_agent, detail=where, record=record_success)


def login_throttle_enforce(*, account: str, ip: str, user_agent: str, where: dict[str, str]) -> None:
    """Raise LoginThrottled (the attempt counted, audited sampled) while `account` from `ip` or `ip` is over its limit.

    Called before a password is looked at, by every password login: /auth/token, Basic on /v2/
    and the dashboard's sign-in form (gateway.dashboard.adapters); `where` says which.
    """
    wait = ratelimit.login_throttle_check(ip=ip, account=account)
    if not wait:
        return
    count = ratelimit.login_throttled(ip=ip, account=account)
    if _sampled(count) or count == 0:  # 0: Redis answered the check, then not the count
        audit_record(
            action="login.throttled",
            actor=(account or "")[:MAX_ACTOR_LENGTH],
            ip=ip,
            user_agent=user_agent,
            success=False,
            detail={**where, "throttled_in_window": count, "retry_after": wait},
        )
    raise LoginThrottled(wait)


def login_failure_record(*, account: str, ip: str, user_agent: str, where: dict[str, str]) -> None:
    """Count one wrong password of `account` from `ip` in the shared windows and audit it (`login.failed`, with the counts)."""
    counts = ratelimit.login_failed(ip=ip, account=account)
    audit_record(
        action="login.failed",
        actor=(account or "")[:MAX_ACTOR_LENGTH],
        ip=ip,
        user_agent=user_agent,
        success=False,
        detail={**where, "failures": {"account_from_address": counts.pair, "address": counts.ip, "account": counts.account}},
    )


def bearer_authenticate(
    *, secret: str, ip: str, user_agent: str = "", channel: str = "api", tenant_slug: str | None = None
) -> Principal:
    """The principal an `Authorization: Bearer` personal access token or robot secret names; LoginFailed otherwise.

    Never throttled (like every token secret); failures are counted per address and audited sampled.
    `tenant_slug`: also read the user's membership there (`Principal.membership`), in the same query.
    """
    found = bearer_secret_check(secret=secret, tenant_slug=tenant_slug)
    if found is None:
        _token_failed(actor="bearer", ip=ip, user_agent=user_agent, where={"channel": channel})
        raise LoginFailed("invalid, revoked or expired token")
    return found


def _token_failed(*, actor: str, ip: str, user_agent: str, where: dict[str, str]) -> None:
    count = ratelimit.token_failed(ip=ip)
    if _sampled(count) or count == 0:
        audit_record(
            action="login.failed",
            actor=actor,
            ip=ip,
            user_agent=user_agent,
            success=False,
            detail={**where, "reason": "invalid token", "token_failures_from_address": count},
        )


def refresh_token_authenticate(*, secret: str, service: str, ip: str, user_agent: str = "") -> Principal:
    """The principal a refresh token stands for at `service`; LoginFailed (audited) otherwise. Never throttled."""
    principal = refresh_token_check(secret=secret, service=service) if secret else None
    if principal is None:
        audit_record(
            action="login.failed",
            actor="refresh_token",
            ip=ip,
            user_agent=user_agent,
            success=False,
            detail={"reason": "invalid refresh token", "service": service, "channel": "token"},
        )
        raise LoginFailed("invalid or expired refresh token")
    return principal


def _succeeded(principal: Principal, *, ip: str, user_agent: str, detail: dict[str, str], record: bool) -> Principal:
    if record:
        audit_record(
            action="login",
            actor=principal.name,
            ip=ip,
            user_agent=user_agent,
            detail={**detail, "credential": _credential_kind(principal)},
        )
    return principal


def _credential_kind(principal: Principal) -> str:
    if principal.kind == "robot":
        return "robot"
    return "access_token" if principal.access_token is not None else "password"
