"""drf-spectacular hooks for the admin API's OpenAPI document (docs/decisions/0019, 0021).

- `ApiAutoSchema` names components after their view and documents `Idempotency-Key` on every POST.
- `problem_responses` (a postprocessing hook) gives every operation the error responses it can
  answer, as `application/problem+json` with the `Problem` schema and an example each, and the
  RateLimit-* headers on its success responses: so an operation another module adds gets them
  without a line of code. Which errors: 401, 403 and 429 everywhere; 404 where the path names a
  tenant or an object; 400 where there is a body or query parameters; 409 on writes; 422 on POST
  (an Idempotency-Key reused); 412 and 428 where `If-Match` is a parameter.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema

from gateway.api.idempotency import IDEMPOTENCY_KEY
from gateway.core.problems import PROBLEM_CONTENT_TYPE, TITLES, TYPE_PREFIX


class ApiAutoSchema(AutoSchema):
    """Names components after their view: `TokenCreateApi.OutputSerializer` → `TokenCreateOutput` (not all `Output`)."""

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, inner = cls.__qualname__.rpartition(".")
        if outer.endswith("Api"):
            return outer.removesuffix("Api") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_KEY)
        return parameters


# status → (component name, code in the example's type, what it means, example detail)
ERRORS: dict[int, tuple[str, str, str, str]] = {
    400: ("BadRequest", "validation-failed", "Invalid fields, parameters or headers.", "The request has invalid fields."),
    401: ("Unauthorized", "not-authenticated", "No valid credentials.", "Authentication credentials were not provided."),
    403: ("Forbidden", "permission-denied", "The token's scopes or the caller's role do not allow this.", "Your role in this tenant does not allow this operation."),
    404: ("NotFound", "not-found", "No such tenant or object, or it is not the caller's.", "No tenant 'acme'."),
    409: ("Conflict", "conflict", "The resource's state forbids this now, or a request with the same Idempotency-Key is in progress.", "'olivia' is the last owner of 'acme'; make someone else an owner first."),
    410: ("Gone", "gone", "It existed but has ended for good (an invitation accepted, revoked or expired).", "This invitation has expired; ask for a new one."),
    412: ("PreconditionFailed", "precondition-failed", "If-Match names an old version.", "The resource changed since you read it (its ETag differs): GET it again and retry."),
    422: ("UnprocessableContent", "unprocessable", "The Idempotency-Key was used for another request.", "This Idempotency-Key was used for another request (another path or body); use a new key."),
    428: ("PreconditionRequired", "precondition-required", "If-Match is missing.", "This resource is edited concurrently: send If-Match with the ETag from your last GET of it."),
    429: ("TooManyRequests", "throttled", "Over the rate limit; retry after Retry-After seconds.", "Request was throttled. Expected available in 12 seconds."),
}  # fmt: skip
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Requests allowed in the current window.",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": "Seconds until the window resets.",
    "RateLimit-Policy": 'The limit and window, e.g. `1200;w=60;comment="read"`.',
}
PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string", "description": f"`{TYPE_PREFIX}<code>`."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string", "description": "The same as the X-Request-ID response header."},
        "errors": {
            "type": "array",
            "description": "Validation errors only: each invalid field, with its dotted path.",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}},
            },
        },
    },
}


def _error_response(status: int) -> dict[str, Any]:
    _, code, description, detail = ERRORS[status]
    example: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": TITLES[status],
        "status": status,
        "detail": detail,
        "request_id": "3f1c0a9e5b7d4c2a8e6f1b0d9c7a5e3f",
    }
    if status == 400:
        example["errors"] = [{"field": "role", "message": '"god" is not a valid choice.', "code": "invalid_choice"}]
    response: dict[str, Any] = {
        "description": description,
        "content": {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}, "examples": {code: {"value": example}}}
        },
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
            **{name: {"$ref": f"#/components/headers/{name}"} for name in RATE_LIMIT_HEADERS},
        }
    return response


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    statuses = {401, 403, 429, *operation.pop("x-problems", [])}  # extend_schema(extensions={"x-problems": [...]})
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation or any(p.get("in") == "query" for p in parameters) or method == "post":
        statuses.add(400)  # a body, filters or a page cursor, or an Idempotency-Key header
    if method in ("post", "put", "patch", "delete"):
        statuses.add(409)
    if method == "post":
        statuses.add(422)
    if any(p.get("in") == "header" and p.get("name") == "If-Match" for p in parameters):
        statuses |= {412, 428}
    return statuses


def problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: the error responses (problem+json) and RateLimit-* headers of every operation."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM
    components["headers"] = {
        name: {"description": text, "schema": {"type": "string"}} for name, text in RATE_LIMIT_HEADERS.items()
    }
    used: set[int] = set()
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.update({n: {"$ref": f"#/components/headers/{n}"} for n in RATE_LIMIT_HEADERS})
                if method == "post" and code.startswith("2"):
                    headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
            for status in sorted(_error_statuses(path, method, operation)):
                responses.setdefault(str(status), {"$ref": f"#/components/responses/{ERRORS[status][0]}"})
                used.add(status)
            operation["responses"] = dict(sorted(responses.items()))
    components["responses"] = {ERRORS[s][0]: _error_response(s) for s in sorted(used)}
    return result
