"""Cursor pagination for every admin API list (docs/decisions/0019).

`?cursor=&limit=` (limit 1–200, default 50); the body is `{"results": […], "next": url|null,
"previous": url|null}` and the next page is also an RFC 8288 `Link: <…>; rel="next"` header.
Each view names a unique ordering (ending in a unique column), so pages never repeat or skip
a row while others are added.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class ApiCursorPagination(CursorPagination):
    page_size = DEFAULT_LIMIT
    page_size_query_param = "limit"
    max_page_size = MAX_LIMIT
    cursor_query_param = "cursor"
    ordering = "-pk"

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise exceptions.ValidationError({"limit": [f"A whole number from 1 to {MAX_LIMIT}."]})
        return int(raw)

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["Not a cursor this list gave out."]}) from None

    def get_paginated_response(self, data: Any) -> Response:
        next_url, previous_url = self.get_next_link(), self.get_previous_link()
        links = []
        if next_url:
            links.append(f'<{next_url}>; rel="next"')
        if previous_url:
            links.append(f'<{previous_url}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else None
        return Response({"results": data, "next": next_url, "previous": previous_url}, headers=headers)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        url = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["results", "next", "previous"],
            "properties": {"results": schema, "next": url, "previous": url},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        return [
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "A page's `next` cursor.",
                "schema": {"type": "string"},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Items per page (1–{MAX_LIMIT}, default {DEFAULT_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
        ]
