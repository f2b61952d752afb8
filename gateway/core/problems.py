"""RFC 9457 problem documents: the one body shape of every admin API error (docs/decisions/0019, 0021).

The admin API's exception handler and the middleware that answers for /api/ outside DRF
(unrouted paths, uncaught errors) both build their bodies here.
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:wharf:problem:"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(*, status: int, code: str, detail: str, request_id: str, errors: list[dict] | None = None) -> dict[str, Any]:
    """The problem document: `type` (a URN of the code), `title`, `status`, `detail`, `request_id` and `errors` if any."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code.lower().replace("_", "-"),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    return body
