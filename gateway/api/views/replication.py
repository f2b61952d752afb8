"""A tenant's replication: /api/v1/tenants/{slug}/replication (settings, status) and …/replication/targets (its own buckets).

Settings and targets carry an ETag; PUT, PATCH and DELETE need If-Match (docs/decisions/0020).
Target credentials are write-only (the secret key is stored encrypted, neither key is ever
returned); endpoints pass the outbound address policy when given and on every use. Reading the
status is for every member; settings and targets are for admins and owners. The target views'
bodies are shared with the staff's platform targets (replication_admin.py): `owner` is the
tenant, or None for the platform.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Tenant
from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_check, if_match_locked
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, TenantMemberPermission
from gateway.core.errors import NotFound
from gateway.replication import locks, selectors
from gateway.replication.models import StorageTarget, TenantReplication
from gateway.replication.targets import (
    storage_target_create,
    storage_target_delete,
    storage_target_get,
    storage_target_update,
    tenant_replication_set,
)

TARGET = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The target's name.")
HEALTH = ["not_configured", "disabled", "failing", "lagging", "ok"]


class TargetOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    platform = serializers.SerializerMethodField(help_text="A platform target (staff-managed), not a tenant's own.")
    endpoint_url = serializers.CharField()
    bucket = serializers.CharField()
    region = serializers.CharField()
    addressing_style = serializers.ChoiceField(choices=StorageTarget.AddressingStyle.choices)
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    def get_platform(self, target: StorageTarget) -> bool:
        return target.tenant_id is None


class TargetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    endpoint_url = serializers.CharField(max_length=500, help_text="http(s); must resolve to public addresses.")
    bucket = serializers.CharField(max_length=63)
    region = serializers.CharField(max_length=64, default="us-1")
    addressing_style = serializers.ChoiceField(choices=StorageTarget.AddressingStyle.choices, default="path")
    access_key = serializers.CharField(max_length=256, write_only=True)
    secret_key = serializers.CharField(max_length=256, write_only=True, trim_whitespace=False, help_text="Stored encrypted.")
    create_bucket = serializers.BooleanField(default=False, write_only=True)


class TargetUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    region = serializers.CharField(max_length=64, required=False)
    access_key = serializers.CharField(max_length=256, required=False, write_only=True)
    secret_key = serializers.CharField(max_length=256, required=False, write_only=True, trim_whitespace=False)


def _target(owner: Tenant | None, name: str) -> StorageTarget:
    found = storage_target_get(tenant=owner, name=name)
    if found is None:
        raise NotFound(f"No storage target {name!r}.")
    return found


def _target_locked(request: Request, owner: Tenant | None, name: str) -> StorageTarget:
    """The target, locked, after its If-Match check (call inside a transaction)."""
    found = locks.storage_target_lock(tenant=owner, name=name)
    return if_match_locked(request, found, TargetOutputSerializer, f"No storage target {name!r}.")


def target_list(view: APIView, request: Request, owner: Tenant | None) -> Response:
    """A page of the owner's targets by name."""
    targets = selectors.storage_target_list(tenant=owner)
    return paginate(request=request, view=view, queryset=targets, serializer=TargetOutputSerializer, ordering="name")


def target_create(request: Request, owner: Tenant | None, actor: str) -> Response:
    """Register a target of the owner (its bucket must answer); 201 with its ETag."""
    serializer = TargetCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    target = storage_target_create(tenant=owner, actor=actor, **serializer.validated_data)
    data = TargetOutputSerializer(target).data
    return etag_response(data, status_code=status.HTTP_201_CREATED)


def target_get(owner: Tenant | None, name: str) -> Response:
    """One target of the owner, with its ETag."""
    data = TargetOutputSerializer(_target(owner, name)).data
    return etag_response(data)


def target_update(request: Request, owner: Tenant | None, name: str, actor: str) -> Response:
    """Change a target of the owner under If-Match."""
    _target(owner, name)
    serializer = TargetUpdateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    with transaction.atomic():
        target = storage_target_update(target=_target_locked(request, owner, name), actor=actor, **serializer.validated_data)
    data = TargetOutputSerializer(target).data
    return etag_response(data)


def target_delete(request: Request, owner: Tenant | None, name: str, actor: str) -> Response:
    """Remove a target of the owner under If-Match (409 while settings choose it)."""
    with transaction.atomic():
        storage_target_delete(target=_target_locked(request, owner, name), actor=actor)
    return Response(status=status.HTTP_204_NO_CONTENT)


class _TenantTargetApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "POST": ADMINS, "PATCH": ADMINS, "DELETE": ADMINS}


class TenantTargetListApi(_TenantTargetApi):
    """The tenant's own replication targets, by name."""

    pagination_class = ApiCursorPagination

    @extend_schema(
        operation_id="replication_targets_list",
        tags=["replication"],
        summary="The tenant's own replication targets",
        responses=TargetOutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        return target_list(self, request, request.tenant)  # type: ignore[attr-defined]


class TenantTargetCreateApi(_TenantTargetApi):
    """Register one of the tenant's own buckets as a replication target. Audited."""

    @extend_schema(
        operation_id="replication_targets_create",
        tags=["replication"],
        summary="Register a replication target (bring your own bucket)",
        request=TargetCreateSerializer,
        responses={201: TargetOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        return target_create(request, request.tenant, self.actor())  # type: ignore[attr-defined]


class TenantTargetGetApi(_TenantTargetApi):
    """One of the tenant's own targets (no credentials)."""

    @extend_schema(
        operation_id="replication_targets_get",
        tags=["replication"],
        summary="One of the tenant's replication targets",
        parameters=[TARGET],
        responses=TargetOutputSerializer,
    )
    def get(self, request: Request, slug: str, name: str) -> Response:
        return target_get(request.tenant, name)  # type: ignore[attr-defined]


class TenantTargetUpdateApi(_TenantTargetApi):
    """Enable, disable, or replace the region or credentials of one of the tenant's targets. If-Match; audited."""

    @extend_schema(
        operation_id="replication_targets_update",
        tags=["replication"],
        summary="Change a replication target",
        parameters=[TARGET, IF_MATCH],
        request=TargetUpdateSerializer,
        responses=TargetOutputSerializer,
    )
    def patch(self, request: Request, slug: str, name: str) -> Response:
        return target_update(request, request.tenant, name, self.actor())  # type: ignore[attr-defined]


class TenantTargetDeleteApi(_TenantTargetApi):
    """Remove one of the tenant's targets (409 while its settings choose it). If-Match; audited."""

    @extend_schema(
        operation_id="replication_targets_delete",
        tags=["replication"],
        summary="Delete a replication target",
        parameters=[TARGET, IF_MATCH],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, slug: str, name: str) -> Response:
        return target_delete(request, request.tenant, name, self.actor())  # type: ignore[attr-defined]


class SettingsOutputSerializer(serializers.Serializer):
    target = serializers.CharField(source="target.name", allow_null=True, help_text="null: never configured.")
    platform = serializers.SerializerMethodField(allow_null=True, help_text="Whether `target` is a platform target.")
    enabled = serializers.BooleanField()

    def get_platform(self, config: TenantReplication | None) -> bool | None:
        return None if config is None or config.target is None else config.target.tenant_id is None


def _settings(config: TenantReplication | None) -> dict[str, Any]:
    if config is None:
        return {"target": None, "platform": None, "enabled": False}
    return SettingsOutputSerializer(config).data


class _SettingsApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "PUT": ADMINS}


class ReplicationGetApi(_SettingsApi):
    """The tenant's replication settings (which target, whether on), with their ETag."""

    class OutputSerializer(SettingsOutputSerializer):
        pass

    @extend_schema(
        operation_id="replication_get",
        tags=["replication"],
        summary="The tenant's replication settings",
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        data = _settings(selectors.tenant_replication_get(tenant=request.tenant))  # type: ignore[attr-defined]
        return etag_response(data)


class ReplicationSetApi(_SettingsApi):
    """Choose the target (the tenant's own, or a platform one with `platform`) and turn replication on or off. If-Match; audited."""

    class InputSerializer(serializers.Serializer):
        target = serializers.CharField(max_length=63, allow_null=True, help_text="null: stop replicating (replicas stay).")
        platform = serializers.BooleanField(default=False, help_text="`target` names a platform target, not one of yours.")
        enabled = serializers.BooleanField(default=True)

    class OutputSerializer(SettingsOutputSerializer):
        pass

    @extend_schema(
        operation_id="replication_set",
        tags=["replication"],
        summary="Set the tenant's replication settings",
        parameters=[IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def put(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name, platform, enabled = (serializer.validated_data[k] for k in ("target", "platform", "enabled"))
        with transaction.atomic():
            if_match_check(request, _settings(locks.tenant_replication_lock(tenant=tenant)))
            target = None if name is None else _target(None if platform else tenant, name)
            tenant_replication_set(tenant=tenant, target=target, enabled=enabled, actor=self.actor())
            data = _settings(selectors.tenant_replication_get(tenant=tenant))
        return etag_response(data)


class StatusObjectsSerializer(serializers.Serializer):
    replicated = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Waiting for a copy, queued or not yet.")
    failed = serializers.IntegerField()
    mismatch = serializers.IntegerField()
    not_yet_queued = serializers.IntegerField()


class ReplicationStatusApi(ApiView):
    """Replication lag (objects waiting and the age of the oldest), the last error, counts per state."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE}

    class OutputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        target = serializers.CharField(allow_null=True)
        health = serializers.ChoiceField(choices=HEALTH)
        objects = StatusObjectsSerializer()
        replicated_bytes = serializers.IntegerField()
        lag_seconds = serializers.FloatField(help_text="Age of the oldest object not yet replicated (0: none).")
        oldest_unreplicated_since = serializers.DateTimeField(allow_null=True)
        last_replicated_at = serializers.DateTimeField(allow_null=True)
        oldest_verified_at = serializers.DateTimeField(allow_null=True)
        last_error = serializers.CharField(allow_null=True, help_text="Of the most recently failed object still failing.")
        last_error_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="replication_status",
        tags=["replication"],
        summary="The tenant's replication lag and health",
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(self.OutputSerializer(selectors.replication_status_get(tenant=request.tenant)).data)  # type: ignore[attr-defined]
