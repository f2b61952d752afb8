"""Conditional updates (docs/decisions/0020): an `ETag` on what people edit at once, `If-Match` required to change it.

The entity tag is a hash of the resource's output representation, so it changes whenever anything
a client can see changes, whatever wrote it. A view that changes such a resource locks its row,
serializes it, and calls `if_match_check` with that representation inside the same transaction:
428 when the request has no `If-Match`, 412 when none of its tags is the current one (`*` matches
any current representation, RFC 9110 §13.1.1). Responses carrying the resource set `ETag` with
`etag_set`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from gateway.core.errors import NotFound, PreconditionFailed, PreconditionRequired


def etag_of(representation: Mapping[str, Any]) -> str:
    """The strong entity tag (quoted) of one resource's output representation."""
    canonical = json.dumps(representation, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def etag_set(response: Response, representation: Mapping[str, Any]) -> Response:
    """`response` with the `ETag` of `representation`."""
    response["ETag"] = etag_of(representation)
    return response


def etag_response(data: Mapping[str, Any], *, status_code: int = 200) -> Response:
    """A resource's representation as the body, with its ETag."""
    return etag_set(Response(data, status=status_code), data)


def if_match_check(request: Request, current: Mapping[str, Any]) -> None:
    """Raise unless the request's `If-Match` names `current` (the locked resource's representation now)."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        raise PreconditionRequired("This resource is edited concurrently: send If-Match with the ETag from your last GET of it.")
    tags = {t.strip() for t in header.split(",") if t.strip()}  # strong comparison: a W/ tag never matches
    if "*" in tags or etag_of(current) in tags:
        return
    raise PreconditionFailed("The resource changed since you read it (its ETag differs): GET it again and retry.")


def if_match_locked(request: Request, row: Any, serializer: type[Serializer], missing: str) -> Any:
    """`row` (just locked by the caller's transaction) if the request's If-Match names its current representation; 404 if gone."""
    if row is None:
        raise NotFound(missing)
    if_match_check(request, serializer(row).data)
    return row


IF_MATCH = OpenApiParameter(
    name="If-Match",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=True,
    description="The `ETag` of the version you read; 428 without it, 412 when the resource changed since.",
)
