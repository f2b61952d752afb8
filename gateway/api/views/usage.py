"""A tenant's usage: /api/v1/tenants/{slug}/usage — stored bytes now, egress and pulls per day (any member).

Any member reads it: it describes the tenant's own consumption, and every member already sees
the repositories it is broken down by. Robots and tokens narrowed to repository patterns do not:
the figures cover the whole tenant (docs/decisions/0027).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView
from gateway.api.permissions import ANY_ROLE, TenantMemberPermission, TenantWidePermission
from gateway.registry.usage_selectors import MAX_DAYS, usage_storage_get, usage_traffic_get

DEFAULT_DAYS = 30


class UsageRepositoryStorageSerializer(serializers.Serializer):
    name = serializers.CharField()
    stored_bytes = serializers.IntegerField(
        help_text="Its manifests and every blob linked into it (shared blobs count here too)."
    )
    manifest_bytes = serializers.IntegerField()
    unique_bytes = serializers.IntegerField(help_text="Blobs linked into this repository only.")


class UsageStorageSerializer(serializers.Serializer):
    stored_bytes = serializers.IntegerField(help_text="What the bucket holds for the tenant: each blob once, and every manifest.")
    manifest_bytes = serializers.IntegerField()
    unique_bytes = serializers.IntegerField(help_text="Blobs linked into exactly one repository.")
    shared_bytes = serializers.IntegerField(help_text="Blobs linked into more than one repository (counted once).")
    unreferenced_bytes = serializers.IntegerField(help_text="Blobs no repository links, until garbage collection reclaims them.")
    repositories = UsageRepositoryStorageSerializer(many=True)


class UsageRepositoryTrafficSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="As it was named when pulled (it may have been deleted since).")
    egress_bytes = serializers.IntegerField()
    pulls = serializers.IntegerField()


class UsageDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="A UTC day.")
    egress_bytes = serializers.IntegerField()
    pulls = serializers.IntegerField()
    repositories = UsageRepositoryTrafficSerializer(many=True, help_text="The repositories pulled from that day, by name.")


class UsageTrafficSerializer(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    egress_bytes = serializers.IntegerField(help_text="Bytes of every blob and manifest pulled (streamed or redirected).")
    pulls = serializers.IntegerField(help_text="Manifest GETs.")
    days = UsageDaySerializer(many=True, help_text="Every day from since to until.")
    repositories = UsageRepositoryTrafficSerializer(many=True, help_text="The period's figures per repository, by name.")


class UsageGetApi(ApiView):
    """The tenant's storage now, and its egress and pulls per day for a period (default: the last 30 days)."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission, TenantWidePermission]
    tenant_roles = {"GET": ANY_ROLE}

    class FilterSerializer(serializers.Serializer):
        since = serializers.DateField(required=False, help_text="First UTC day (ISO 8601 date); default 29 days before until.")
        until = serializers.DateField(required=False, help_text="Last UTC day, included; default today.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            until = attrs.get("until") or datetime.now(UTC).date()
            since = attrs.get("since") or until - timedelta(days=DEFAULT_DAYS - 1)
            if since > until:
                raise serializers.ValidationError({"until": "Must not be before since."})
            if (until - since).days + 1 > MAX_DAYS:
                raise serializers.ValidationError({"since": f"At most {MAX_DAYS} days before until."})
            return {"since": since, "until": until}

    class OutputSerializer(serializers.Serializer):
        storage = UsageStorageSerializer()
        traffic = UsageTrafficSerializer()

    @extend_schema(
        operation_id="tenant_usage_get",
        tags=["usage"],
        summary="The tenant's stored bytes, and egress and pulls per day (any member)",
        parameters=[FilterSerializer],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        period = self.FilterSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        data = {"storage": usage_storage_get(tenant=tenant), "traffic": usage_traffic_get(tenant=tenant, **period.validated_data)}
        return Response(self.OutputSerializer(data).data)
