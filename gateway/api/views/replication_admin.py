"""Platform replication targets: /api/v1/admin/replication-targets[/{name}] — staff only.

A platform target has no tenant: staff register it and any tenant may choose it in its settings.
Only a staff user may call these, with a token carrying the `admin` scope (or a staff session);
everyone else gets 403. The bodies are the tenant targets' (replication.py) with owner None.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import StaffApiView
from gateway.api.conditional import IF_MATCH
from gateway.api.pagination import ApiCursorPagination
from gateway.api.views.replication import (
    TARGET,
    TargetCreateSerializer,
    TargetOutputSerializer,
    TargetUpdateSerializer,
    target_create,
    target_delete,
    target_get,
    target_list,
    target_update,
)


class _AdminTargetApi(StaffApiView):
    pass


class AdminTargetListApi(_AdminTargetApi):
    """The platform's replication targets, by name."""

    pagination_class = ApiCursorPagination

    @extend_schema(
        operation_id="admin_replication_targets_list",
        tags=["admin"],
        summary="Platform replication targets (staff)",
        responses=TargetOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        return target_list(self, request, None)


class AdminTargetCreateApi(_AdminTargetApi):
    """Register a platform replication target (its bucket must answer). Audited."""

    @extend_schema(
        operation_id="admin_replication_targets_create",
        tags=["admin"],
        summary="Register a platform replication target (staff)",
        request=TargetCreateSerializer,
        responses={201: TargetOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        return target_create(request, None, self.actor())


class AdminTargetGetApi(_AdminTargetApi):
    """One platform target (no credentials)."""

    @extend_schema(
        operation_id="admin_replication_targets_get",
        tags=["admin"],
        summary="One platform replication target (staff)",
        parameters=[TARGET],
        responses=TargetOutputSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        return target_get(None, name)


class AdminTargetUpdateApi(_AdminTargetApi):
    """Enable, disable, or replace the region or credentials of a platform target. If-Match; audited."""

    @extend_schema(
        operation_id="admin_replication_targets_update",
        tags=["admin"],
        summary="Change a platform replication target (staff)",
        parameters=[TARGET, IF_MATCH],
        request=TargetUpdateSerializer,
        responses=TargetOutputSerializer,
    )
    def patch(self, request: Request, name: str) -> Response:
        return target_update(request, None, name, self.actor())


class AdminTargetDeleteApi(_AdminTargetApi):
    """Remove a platform target no tenant has chosen (409 otherwise). If-Match; audited."""

    @extend_schema(
        operation_id="admin_replication_targets_delete",
        tags=["admin"],
        summary="Delete a platform replication target (staff)",
        parameters=[TARGET, IF_MATCH],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, name: str) -> Response:
        return target_delete(request, None, name, self.actor())
