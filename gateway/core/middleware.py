"""Request id (taken from a sane X-Request-ID header or made up, logged and echoed back), and JSON errors for API clients.

Under /v2/ and /auth/token an uncaught error is the OCI `{"errors": [...]}` 500; under /api/ every error
answered outside DRF (an unrouted path, an uncaught exception, a Django 4xx page) is problem+json.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from gateway.core.logging import request_id_var
from gateway.core.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger("gateway.errors")

_VALID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
# Paths whose clients (docker, containerd, skopeo, oras) read OCI error JSON, never an HTML page.
API_PREFIXES = ("/v2/", "/auth/token")
# The admin API (gateway/api): its clients read RFC 9457 problem documents.
ADMIN_API_PREFIX = "/api/"
# Headers of a Django error response that a problem replacing it keeps.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
_PROBLEM_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 500: "INTERNAL"}
_CLIENT_ERRORS = (Http404, PermissionDenied, SuspiciousOperation, BadRequest)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        rid = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = rid  # type: ignore[attr-defined]
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response


def is_api_path(path: str) -> bool:
    """Whether `path` belongs to the registry API (/v2/, /auth/token)."""
    return path == "/v2" or path.startswith(API_PREFIXES)


def is_admin_api_path(path: str) -> bool:
    """Whether `path` belongs to the admin REST API (/api/...)."""
    return path == "/api" or path.startswith(ADMIN_API_PREFIX)


def problem_http_response(*, status: int, request_id: str, detail: str, code: str | None = None) -> HttpResponse:
    """A problem+json response built without DRF (for what the admin API answers outside its views)."""
    code = code or _PROBLEM_CODES.get(status, "ERROR")
    body = problem_body(status=status, code=code, detail=detail, request_id=request_id)
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    if status >= 500:
        response._has_been_logged = True  # type: ignore[attr-defined]  # logged where it was caught
    return response


def _as_problem(response: HttpResponse, request_id: str) -> HttpResponse:
    """An error page Django (not the API) rendered under /api/, replaced by the same status as a problem."""
    detail = {404: "No such API path.", 500: "internal server error"}.get(response.status_code, response.reason_phrase)
    problem = problem_http_response(status=response.status_code, request_id=request_id, detail=detail)
    for header in _KEPT_HEADERS:
        if header in response:
            problem[header] = response[header]
    return problem


def unknown_error_response(request_id: str) -> HttpResponse:
    """The spec-shaped 500: `{"errors":[{"code":"UNKNOWN",...}]}`, with only the request id as detail."""
    body = {"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": {"request_id": request_id}}]}
    response = HttpResponse(json.dumps(body), status=500, content_type="application/json")
    response._has_been_logged = True  # type: ignore[attr-defined]  # logged here with the traceback; Django need not again
    return response


class ApiErrorMiddleware:
    """An uncaught exception under /v2/ or /auth/token answers a JSON 500 (with DEBUG too) and is logged with the request id.

    Under /api/ the same holds with problem+json, and every other error response that is not
    one already (Django's 404 for an unrouted path, its 400/403 pages) becomes a problem.

    `process_exception` catches what a view raises, before Django renders its debug or HTML
    page; a 500 that some other layer already rendered as HTML is replaced on the way out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_admin_api_path(request.path):
            if response.status_code >= 400 and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
                return _as_problem(response, getattr(request, "request_id", ""))
            return response
        if (
            response.status_code == 500
            and is_api_path(request.path)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return unknown_error_response(getattr(request, "request_id", ""))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        admin_api = is_admin_api_path(request.path)
        if not (admin_api or is_api_path(request.path)) or isinstance(exception, _CLIENT_ERRORS):
            return None  # not ours, or one Django answers with a 4xx itself (made a problem on the way out)
        rid = getattr(request, "request_id", "")
        log.error(
            "unhandled %s on %s %s",
            type(exception).__name__,
            request.method,
            request.path,
            exc_info=exception,
            extra={"request_id": rid},
        )
        if admin_api:
            return problem_http_response(status=500, request_id=rid, detail="internal server error")
        return unknown_error_response(rid)
