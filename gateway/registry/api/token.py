"""/auth/token: the Docker token service (GET with Basic or no credentials; POST OAuth2).

Granted access is what was asked ∩ what the identity may do (access.principal_actions).
Failed logins are throttled per IP and per account in Redis (429 + Retry-After), and
every failure and every login is written to the audit log. Error messages never say
whether the account exists.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import timezone as dt_timezone
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts import ratelimit
from accounts.selectors import Principal, credentials_check
from accounts.services import audit_record, refresh_token_check, refresh_token_issue
from accounts.tokens import token_sign
from gateway.core.errors import ApplicationError
from gateway.registry import access, selectors
from gateway.registry.api.auth import BadCredentials, basic_principal
from gateway.registry.api.base import host_tenant_slug
from gateway.registry.errors import RegistryError
from gateway.registry.models import Repository

MAX_SCOPES = 20


def _json(doc: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(doc), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    for k, v in headers.items():
        response[k.replace("_", "-")] = v
    return response


def _error(status: int, code: str, message: str, **headers: str) -> HttpResponse:
    return _json({"errors": [{"code": code, "message": message}], "error": code.lower(), "error_description": message}, status, **headers)


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def parse_scopes(values: list[str]) -> list[tuple[str, str, list[str]]]:
    """`repository:acme/app:pull,push` → ("repository", "acme/app", ["pull", "push"]); bad ones are skipped."""
    out = []
    for value in values:
        for scope in value.split():
            kind, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name:
                continue
            kind = kind.split("(", 1)[0]  # "repository(plugin)" is a repository
            out.append((kind, name, [a for a in actions.split(",") if a]))
    return out[:MAX_SCOPES]


def grants_for(*, principal: Principal | None, service: str, scopes: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """The `access` claim: for each scope asked, the actions this principal may take there."""
    host_slug = host_tenant_slug(service)
    grants = []
    for kind, name, wanted in scopes:
        granted: list[str] = []
        if kind == "repository":
            requested = set(access.ALL_ACTIONS) if "*" in wanted else set(wanted) & access.ALL_ACTIONS
            try:
                slug, repo = access.split_name(host_slug=host_slug, name=name)
            except RegistryError:
                slug = repo = ""
            tenant = access.tenant_cached(slug) if slug else None
            if tenant is not None:
                repository = selectors.repository_get(tenant=tenant, name=repo)
                public = repository is not None and repository.visibility == Repository.Visibility.PUBLIC
                allowed = access.principal_actions(principal=principal, tenant=tenant, repository=repo, public=public)
                granted = sorted(requested & allowed)
        elif kind == "registry" and name == "catalog" and principal is not None and "*" in wanted:
            granted = ["*"]
        grants.append({"type": kind, "name": name, "actions": granted})
    return grants


@method_decorator(csrf_exempt, name="dispatch")
class TokenView(View):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> HttpResponse:
        service = request.GET.get("service") or request.get_host()
        scopes = parse_scopes(request.GET.getlist("scope"))
        principal: Principal | None = None
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization:
            if authorization.partition(" ")[0].lower() != "basic":
                return _error(401, "UNAUTHORIZED", "use HTTP Basic credentials to get a token", WWW_Authenticate='Basic realm="wharf"')
            username = _basic_username(authorization)
            checked = self._login(request, username, lambda: basic_principal(authorization), service=service, scoped=bool(scopes))
            if isinstance(checked, HttpResponse):
                return checked
            principal = checked
        offline = request.GET.get("offline_token", "").lower() == "true"
        return self._issue(principal, service, scopes, refresh=offline and principal is not None)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = request.POST
        service = form.get("service") or request.get_host()
        scopes = parse_scopes([form.get("scope", "")])
        grant_type = form.get("grant_type", "")
        if grant_type == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username or not password:
                return _error(400, "UNAUTHORIZED", "username and password are required")

            def check() -> Principal:
                found = credentials_check(username=username, secret=password)
                if found is None:
                    raise BadCredentials("invalid username or password")
                return found

            checked = self._login(request, username, check, service=service, scoped=bool(scopes))
            if isinstance(checked, HttpResponse):
                return checked
            return self._issue(checked, service, scopes, refresh=form.get("access_type") == "offline", oauth=True)
        if grant_type == "refresh_token":
            secret = form.get("refresh_token", "")
            principal = refresh_token_check(secret=secret, service=service) if secret else None
            if principal is None:
                audit_record(action="login.failed", actor="refresh_token", ip=_client_ip(request), user_agent=_ua(request), success=False,
                             detail={"reason": "invalid refresh token", "service": service})
                return _error(401, "UNAUTHORIZED", "invalid or expired refresh token")
            response = self._issue(principal, service, scopes, refresh=False, oauth=True)
            doc = json.loads(response.content)
            doc["refresh_token"] = secret
            return _json(doc)
        return _error(400, "UNSUPPORTED", "grant_type must be password or refresh_token")

    def _login(self, request: HttpRequest, username: str, check, *, service: str, scoped: bool) -> Principal | HttpResponse:
        ip = _client_ip(request)
        wait = ratelimit.login_throttle_check(ip=ip, account=username)
        if wait:
            return _error(429, "TOOMANYREQUESTS", f"too many failed logins; try again in {wait} seconds", Retry_After=str(wait))
        try:
            principal = check()
        except BadCredentials:
            ratelimit.login_failed(ip=ip, account=username)
            audit_record(action="login.failed", actor=username[:150], ip=ip, user_agent=_ua(request), success=False, detail={"service": service})
            return _error(401, "UNAUTHORIZED", "invalid username or password", WWW_Authenticate='Basic realm="wharf"')
        ratelimit.login_succeeded(ip=ip, account=username)
        if not scoped:  # `docker login` asks for no scope: record the login once, not every token
            audit_record(action="login", actor=principal.name, ip=ip, user_agent=_ua(request), detail={"service": service})
        return principal

    def _issue(self, principal: Principal | None, service: str, scopes, *, refresh: bool, oauth: bool = False) -> HttpResponse:
        grants = grants_for(principal=principal, service=service, scopes=scopes)
        signed = token_sign(subject=principal.name if principal else "", audience=service, access=grants)
        doc: dict[str, Any] = {
            "token": signed.token,
            "access_token": signed.token,
            "expires_in": signed.expires_in,
            "issued_at": signed.issued_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        if oauth:
            doc["scope"] = " ".join(f"{g['type']}:{g['name']}:{','.join(g['actions'])}" for g in grants)
        if refresh and principal is not None:
            try:
                doc["refresh_token"] = refresh_token_issue(principal=principal, service=service)
            except ApplicationError as exc:
                return _error(400, "UNSUPPORTED", exc.message)
        return _json(doc)


def _basic_username(authorization: str) -> str:
    try:
        return base64.b64decode(authorization.partition(" ")[2].strip(), validate=True).decode("utf-8").partition(":")[0][:150]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _ua(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:300]
