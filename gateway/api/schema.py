"""drf-spectacular hooks for the admin API's OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema


class ApiAutoSchema(AutoSchema):
    """Names components after their view: `TokenCreateApi.OutputSerializer` → `TokenCreateOutput` (not all `Output`)."""

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, inner = cls.__qualname__.rpartition(".")
        if outer.endswith("Api"):
            return outer.removesuffix("Api") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)
