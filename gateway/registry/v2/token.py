"""/auth/token: the Docker token service (GET with Basic or no credentials; POST OAuth2).

Granted access is what was asked ∩ what the identity may do (access.grants_for).
Credentials are checked by accounts.logins (failed passwords throttled per account and
address and per address, 429 + Retry-After; every failure and every `docker login`
audited). Error messages never say whether the account exists. Bad input (a NUL anywhere,
an oversized form) is a 4xx in the registry's and OAuth2's error shapes, never a 500.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.logins import LoginFailed, LoginThrottled, credentials_authenticate, refresh_token_authenticate
from accounts.selectors import Principal
from accounts.sessions import refresh_token_issue
from accounts.tokens import token_sign
from gateway.core.addresses import client_ip
from gateway.core.errors import ApplicationError
from gateway.registry import access
from gateway.registry.errors import RegistryError, SizeInvalid, TooManyRequests
from gateway.registry.v2.auth import WHARF_CLAIM, BadCredentials, basic_principal
from gateway.registry.v2.http import read_at_most, request_body

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="wharf"'}
MAX_FORM_BYTES = 64 * 1024  # an OAuth2 token request is a few hundred bytes


def _json(doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(doc), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        response[k] = v
    return response


def _error(
    status: int, code: str, message: str, *, oauth: str | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The registry's `{"errors": [...]}` body plus OAuth2's `error` / `error_description` (RFC 6749 §5.2)."""
    doc = {"errors": [{"code": code, "message": message}], "error": oauth or code.lower(), "error_description": message}
    return _json(doc, status, headers)


def _refused(
    exc: ApplicationError | RegistryError, *, oauth: str | None = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """An error by its own status and code (gateway/core/errors.py, registry/errors.py)."""
    return _error(exc.status, exc.code, exc.message, oauth=oauth, headers={**exc.headers, **(headers or {})})


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
        scopes = access.parse_scopes(request.GET.getlist("scope"))
        principal: Principal | None = None
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization:
            if authorization.partition(" ")[0].lower() != "basic":
                return _error(401, "UNAUTHORIZED", "use HTTP Basic credentials to get a token", headers=BASIC_CHALLENGE)
            try:
                # `docker login` asks for no scope: record the login once, not every token
                principal = basic_principal(
                    authorization,
                    ip=client_ip(request),
                    user_agent=_ua(request),
                    service=service,
                    channel="token",
                    record_success=not scopes,
                )
            except BadCredentials as exc:
                return _error(401, "UNAUTHORIZED", str(exc), headers=BASIC_CHALLENGE)
            except TooManyRequests as exc:
                return _refused(exc)
        offline = request.GET.get("offline_token", "").lower() == "true"
        return _issue(principal, service, scopes, offline=offline)

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
        scopes = access.parse_scopes([form.get("scope", "")])
        grant_type = form.get("grant_type", "")
        ip, user_agent = client_ip(request), _ua(request)
        if grant_type == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username or not password:
                return _error(400, "UNAUTHORIZED", "username and password are required", oauth="invalid_request")
            try:
                principal = credentials_authenticate(
                    username=username,
                    secret=password,
                    ip=ip,
                    user_agent=user_agent,
                    service=service,
                    channel="token",
                    record_success=not scopes,
                )
            except (LoginFailed, LoginThrottled) as exc:
                return _refused(exc, headers=BASIC_CHALLENGE if isinstance(exc, LoginFailed) else None)
            return _issue(principal, service, scopes, offline=form.get("access_type") == "offline", oauth=True)
        if grant_type == "refresh_token":
            secret = form.get("refresh_token", "")
            try:
                principal = refresh_token_authenticate(secret=secret, service=service, ip=ip, user_agent=user_agent)
            except LoginFailed as exc:
                return _refused(exc, oauth="invalid_grant")
            return _issue(principal, service, scopes, oauth=True, refresh_token=secret)
        return _error(400, "UNSUPPORTED", "grant_type must be password or refresh_token", oauth="unsupported_grant_type")


def _issue(
    principal: Principal | None,
    service: str,
    scopes: list[access.Scope],
    *,
    offline: bool = False,
    oauth: bool = False,
    refresh_token: str = "",
) -> HttpResponse:
    """The token response; `offline` issues a new refresh token, `refresh_token` hands back the one the client used."""
    grants = access.grants_for(principal=principal, service=service, scopes=scopes)
    signed = token_sign(
        subject=principal.name if principal else "", audience=service, access=grants, private_claims=_wharf_claim(principal)
    )
    doc: dict[str, Any] = {
        "token": signed.token,
        "access_token": signed.token,
        "expires_in": signed.expires_in,
        "issued_at": signed.issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if oauth:
        doc["scope"] = " ".join(f"{g['type']}:{g['name']}:{','.join(g['actions'])}" for g in grants)
    if offline and principal is not None:
        try:
            refresh_token = refresh_token_issue(principal=principal, service=service)
        except ApplicationError as exc:
            return _refused(exc, oauth="invalid_request")
    if refresh_token:
        doc["refresh_token"] = refresh_token
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
