"""/auth/token: the Docker token service (GET with Basic or no credentials; POST OAuth2).

Granted access is what was asked ∩ what the identity may do (access.principal_actions).
Credentials are checked by accounts.logins (failed passwords throttled per account and
address and per address, 429 + Retry-After; every failure and every `docker login`
audited). Error messages never say whether the account exists. Bad input (a NUL anywhere,
an oversized form) is a 4xx in the registry's and OAuth2's error shapes, never a 500.
"""

from __future__ import annotations

import json
from datetime import timezone as dt_timezone
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.logins import LoginFailed, LoginThrottled, credentials_authenticate, refresh_token_authenticate
from accounts.selectors import Principal
from accounts.services import refresh_token_issue
from accounts.tokens import token_sign
from gateway.core.errors import ApplicationError
from gateway.registry import access, selectors
from gateway.registry.api.auth import WHARF_CLAIM, BadCredentials, basic_credentials
from gateway.registry.api.base import host_tenant_slug
from gateway.registry.api.http import read_at_most, request_body
from gateway.registry.errors import RegistryError, SizeInvalid
from gateway.registry.models import Repository

MAX_SCOPES = 20
MAX_FORM_BYTES = 64 * 1024  # an OAuth2 token request is a few hundred bytes


def _json(doc: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(doc), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    for k, v in headers.items():
        response[k.replace("_", "-")] = v
    return response


def _error(status: int, code: str, message: str, *, oauth: str | None = None, **headers: str) -> HttpResponse:
    """The registry's `{"errors": [...]}` body plus OAuth2's `error` / `error_description` (RFC 6749 §5.2)."""
    doc = {"errors": [{"code": code, "message": message}], "error": oauth or code.lower(), "error_description": message}
    return _json(doc, status, **headers)


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


class _FormRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _form(request: HttpRequest) -> QueryDict:
    """The POSTed form. Bodies sent chunked with no Content-Length (containers/image: skopeo, podman,
    buildah) are read from the WSGI input, as uploads are; Django would see them as empty."""
    try:
        body = request_body(request)
    except SizeInvalid as exc:
        raise _FormRefused(400, exc.message) from None
    if body.length is not None and body.length > MAX_FORM_BYTES:
        raise _FormRefused(413, f"the form may be at most {MAX_FORM_BYTES} bytes")
    if body.length is not None:
        return request.POST  # Django parses it (urlencoded or multipart) within DATA_UPLOAD_MAX_MEMORY_SIZE
    raw = read_at_most(body, MAX_FORM_BYTES + 1)
    if len(raw) > MAX_FORM_BYTES:
        raise _FormRefused(413, f"the form may be at most {MAX_FORM_BYTES} bytes")
    if request.content_type not in ("", "application/x-www-form-urlencoded"):
        raise _FormRefused(400, "send a chunked form as application/x-www-form-urlencoded")
    return QueryDict(raw, encoding=request.encoding)


def _nul_in(values: QueryDict) -> str | None:
    """The first field holding a NUL character (PostgreSQL text cannot), or None."""
    return next((key for key, items in values.lists() if "\x00" in key or any("\x00" in v for v in items)), None)


@method_decorator(csrf_exempt, name="dispatch")
class TokenView(View):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> HttpResponse:
        bad = _nul_in(request.GET)
        if bad is not None:
            return _error(400, "UNSUPPORTED", f"query parameter {bad[:40]!r} holds a NUL character", oauth="invalid_request")
        service = request.GET.get("service") or request.get_host()
        scopes = parse_scopes(request.GET.getlist("scope"))
        principal: Principal | None = None
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization:
            if authorization.partition(" ")[0].lower() != "basic":
                return _error(401, "UNAUTHORIZED", "use HTTP Basic credentials to get a token", WWW_Authenticate='Basic realm="wharf"')
            try:
                username, secret = basic_credentials(authorization)
            except BadCredentials as exc:
                return _error(401, "UNAUTHORIZED", str(exc), WWW_Authenticate='Basic realm="wharf"')
            checked = self._login(request, username, secret, service=service, scoped=bool(scopes))
            if isinstance(checked, HttpResponse):
                return checked
            principal = checked
        offline = request.GET.get("offline_token", "").lower() == "true"
        return self._issue(principal, service, scopes, refresh=offline and principal is not None)

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            form = _form(request)
        except _FormRefused as exc:
            return _error(exc.status, "UNSUPPORTED", exc.message, oauth="invalid_request")
        except (TooManyFieldsSent, RequestDataTooBig) as exc:
            return _error(413, "UNSUPPORTED", str(exc), oauth="invalid_request")
        except (MultiPartParserError, UnreadablePostError) as exc:
            return _error(400, "UNSUPPORTED", f"unreadable form: {str(exc)[:100]}", oauth="invalid_request")
        bad = _nul_in(form) or _nul_in(request.GET)
        if bad is not None:
            return _error(400, "UNSUPPORTED", f"form field {bad[:40]!r} holds a NUL character", oauth="invalid_request")
        service = form.get("service") or request.get_host()
        scopes = parse_scopes([form.get("scope", "")])
        grant_type = form.get("grant_type", "")
        if grant_type == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username or not password:
                return _error(400, "UNAUTHORIZED", "username and password are required", oauth="invalid_request")
            checked = self._login(request, username, password, service=service, scoped=bool(scopes))
            if isinstance(checked, HttpResponse):
                return checked
            return self._issue(checked, service, scopes, refresh=form.get("access_type") == "offline", oauth=True)
        if grant_type == "refresh_token":
            secret = form.get("refresh_token", "")
            try:
                principal = refresh_token_authenticate(secret=secret, service=service, ip=_client_ip(request), user_agent=_ua(request))
            except LoginFailed as exc:
                return _error(401, "UNAUTHORIZED", exc.message, oauth="invalid_grant")
            response = self._issue(principal, service, scopes, refresh=False, oauth=True)
            doc = json.loads(response.content)
            doc["refresh_token"] = secret
            return _json(doc)
        return _error(400, "UNSUPPORTED", "grant_type must be password or refresh_token", oauth="unsupported_grant_type")

    def _login(self, request: HttpRequest, username: str, secret: str, *, service: str, scoped: bool) -> Principal | HttpResponse:
        try:
            # `docker login` asks for no scope: record the login once, not every token
            return credentials_authenticate(
                username=username, secret=secret, ip=_client_ip(request), user_agent=_ua(request), service=service,
                channel="token", record_success=not scoped,
            )
        except LoginThrottled as exc:
            return _error(429, "TOOMANYREQUESTS", exc.message, Retry_After=str(exc.retry_after))
        except LoginFailed as exc:
            return _error(401, "UNAUTHORIZED", exc.message, WWW_Authenticate='Basic realm="wharf"')

    def _issue(self, principal: Principal | None, service: str, scopes, *, refresh: bool, oauth: bool = False) -> HttpResponse:
        grants = grants_for(principal=principal, service=service, scopes=scopes)
        signed = token_sign(subject=principal.name if principal else "", audience=service, access=grants,
                            private_claims=_wharf_claim(principal))
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
                return _error(400, "UNSUPPORTED", exc.message, oauth="invalid_request")
        return _json(doc)


def _wharf_claim(principal: Principal | None) -> dict[str, object] | None:
    """What the registry needs to re-check the credential behind a token (auth.WHARF_CLAIM)."""
    if principal is None:
        return None
    if principal.kind == "robot" or principal.user is None:
        return {WHARF_CLAIM: {"kind": "robot"}}
    claim: dict[str, object] = {"kind": "user", "sv": principal.user.session_epoch}
    if principal.access_token is not None:
        claim["pat"] = principal.access_token.pk
    return {WHARF_CLAIM: claim}


def _ua(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:300]
