"""Request id (taken from a sane X-Request-ID header or made up, logged and echoed back), and JSON 500s for API clients."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from gateway.core.logging import request_id_var

log = logging.getLogger("gateway.errors")

_VALID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
# Paths whose clients (docker, containerd, skopeo, oras) read OCI error JSON, never an HTML page.
API_PREFIXES = ("/v2/", "/auth/token")
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


def unknown_error_response(request_id: str) -> HttpResponse:
    """The spec-shaped 500: `{"errors":[{"code":"UNKNOWN",...}]}`, with only the request id as detail."""
    body = {"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": {"request_id": request_id}}]}
    response = HttpResponse(json.dumps(body), status=500, content_type="application/json")
    response._has_been_logged = True  # type: ignore[attr-defined]  # logged here with the traceback; Django need not again
    return response


class ApiErrorMiddleware:
    """An uncaught exception under /v2/ or /auth/token answers a JSON 500 (with DEBUG too) and is logged with the request id.

    `process_exception` catches what a view raises, before Django renders its debug or HTML
    page; a 500 that some other layer already rendered as HTML is replaced on the way out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 500
            and is_api_path(request.path)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return unknown_error_response(getattr(request, "request_id", ""))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request.path) or isinstance(exception, _CLIENT_ERRORS):
            return None  # not ours, or one Django answers with a 4xx itself
        rid = getattr(request, "request_id", "")
        log.error(
            "unhandled %s on %s %s",
            type(exception).__name__,
            request.method,
            request.path,
            exc_info=exception,
            extra={"request_id": rid},
        )
        return unknown_error_response(rid)
