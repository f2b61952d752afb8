"""`Authorization: Bearer <personal access token or robot secret>` for the admin API, through accounts.logins.

The secret is checked by the same lookups `docker login` uses (accounts.selectors); a bad,
revoked or expired one answers 401. What it may do (its scopes) is permissions.py's question.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.logins import LoginFailed, bearer_authenticate
from accounts.models import RobotAccount
from accounts.principals import Principal


class RobotUser:
    """What `request.user` is for a robot: authenticated, never staff, no profile."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, robot: RobotAccount) -> None:
        self.robot = robot
        self.username = robot.username

    def __str__(self) -> str:
        return self.username


class BearerAuthentication(authentication.BaseAuthentication):
    """A personal access token or robot secret as a bearer token; `request.auth` is its Principal."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Principal] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: the session may still authenticate the request
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be `Bearer <token>`.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid text.") from None
        try:
            principal = bearer_authenticate(
                secret=secret,
                ip=request.META.get("REMOTE_ADDR", ""),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                # A tenant's path: its membership comes with the token, for TenantMemberPermission (docs/decisions/0037).
                tenant_slug=(request.parser_context or {}).get("kwargs", {}).get("slug"),
            )
        except LoginFailed as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None
        user: Any = principal.user if principal.user is not None else RobotUser(principal.robot)  # type: ignore[arg-type]
        return user, principal

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="wharf-api"'


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "gateway.api.authentication.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal access token or robot secret with api scopes."}
