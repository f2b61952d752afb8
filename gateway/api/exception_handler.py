"""Every admin API error as RFC 9457 `application/problem+json` (docs/decisions/0019).

DRF's exceptions and the domain's ApplicationError (gateway/core/errors.py, the one table of
statuses and codes) render alike: `type`, `title`, `status`, `detail`, `request_id`, and for
validation errors `errors` with a field path each. Anything else is logged and answers a 500
problem with the request id only.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from gateway.core.errors import ApplicationError

log = logging.getLogger("gateway.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:wharf:problem:"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def problem_response(
    *, status: int, code: str, detail: str, request_id: str, errors: list[dict] | None = None, headers: dict | None = None
) -> Response:
    """One problem+json response."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code.lower().replace("_", "-"),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def field_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail flattened to `[{"field": "a.0.b", "message": …, "code": …}]` ("" for the whole body)."""
    if isinstance(detail, dict):
        return [e for key, value in detail.items() for e in field_errors(value, _join(path, str(key)))]
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [{"field": path, "message": str(item), "code": item.code or "invalid"} for item in detail]
        return [e for i, item in enumerate(detail) for e in field_errors(item, _join(path, str(i)))]
    return [{"field": path, "message": str(detail), "code": getattr(detail, "code", None) or "invalid"}]


def _join(path: str, key: str) -> str:
    if key == "non_field_errors":
        return path
    return f"{path}.{key}" if path else key


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER for /api/: DRF errors, ApplicationError and the unexpected, all problem+json."""
    request = context.get("request")
    rid = getattr(request, "request_id", "") or getattr(getattr(request, "_request", None), "request_id", "")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, ApplicationError):
        errors = field_errors(exc.extra["errors"]) if "errors" in exc.extra else None
        return problem_response(
            status=exc.status, code=exc.code, detail=exc.message, request_id=rid, errors=errors, headers=exc.headers
        )
    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        if isinstance(exc, exceptions.ValidationError):
            return problem_response(
                status=exc.status_code,
                code="VALIDATION_FAILED",
                detail="The request has invalid fields.",
                request_id=rid,
                errors=field_errors(exc.detail),
                headers=headers,
            )
        detail = exc.detail if isinstance(exc.detail, str) else "; ".join(e["message"] for e in field_errors(exc.detail))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return problem_response(status=exc.status_code, code=str(code), detail=str(detail), request_id=rid, headers=headers)
    log.error("unhandled %s in the admin API", type(exc).__name__, exc_info=exc)
    return problem_response(status=500, code="INTERNAL", detail="internal server error", request_id=rid)
