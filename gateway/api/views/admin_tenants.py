"""Platform operators' tenants: /api/v1/admin/tenants[/{slug}[/suspend|/reactivate|/quota]] (docs/decisions/0023).

Staff users only (a session, or a token with the `admin` scope); everyone else gets 403. Every
tenant, any status, with its stored bytes and member count; suspension and the storage quota are
changed here, audited. The quota is edited concurrently (billing writes it too), so it is a
resource of its own with an ETag, and changing it needs If-Match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import django_filters
from django.db import transaction
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.locks import tenant_lock
from accounts.models import Tenant
from accounts.selectors import tenant_get_any_status
from accounts.tenant_admin import MAX_REASON, tenant_quota_change, tenant_reactivate, tenant_suspend
from gateway.api.base import StaffApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_locked
from gateway.api.pagination import ApiCursorPagination
from gateway.core.errors import NotFound
from gateway.registry.tenant_usage import tenant_get_with_usage, tenant_list_with_usage

F = TypeVar("F", bound=Callable[..., Any])


def admin_schema(operation_id: str, summary: str, parameters: list | None = None, **kwargs: Any) -> Callable[[F], F]:
    """extend_schema for an /admin/ operation: tagged `admin`, its summary marked as staff-only."""
    return extend_schema(operation_id=operation_id, tags=["admin"], summary=f"{summary} (staff)", parameters=parameters, **kwargs)


class TenantFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", max_length=200, help_text="Part of the slug or name (case-insensitive).")
    status = django_filters.ChoiceFilter(choices=Tenant.Status.choices)

    class Meta:
        model = Tenant
        fields = ["q", "status"]

    def search(self, queryset: QuerySet[Tenant], name: str, value: str) -> QuerySet[Tenant]:
        return queryset.filter(Q(slug__icontains=value) | Q(name__icontains=value)) if value else queryset


FILTER_PARAMETERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description=TenantFilter.base_filters["q"].extra["help_text"]),
    OpenApiParameter("status", OpenApiTypes.STR, enum=Tenant.Status.values, description="Only tenants in this status."),
]


class AdminTenantOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Tenant.Status.choices)
    suspended_at = serializers.DateTimeField(allow_null=True)
    suspension_reason = serializers.CharField(help_text="Why it is suspended ('' when active); not shown to its members.")
    storage_quota_bytes = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    stored_bytes = serializers.IntegerField(help_text="Its blobs (each once) and manifests.")
    member_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


def _tenant(slug: str) -> Tenant:
    tenant = tenant_get_with_usage(slug=slug)
    if tenant is None:
        raise NotFound(f"No tenant {slug!r}.")
    return tenant


class AdminTenantListApi(StaffApiView):
    """Every tenant by slug, searchable and filtered by status, with usage, member count and quota."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(AdminTenantOutputSerializer):
        pass

    @admin_schema(
        "admin_tenants_list", "Every tenant, with usage and quota", FILTER_PARAMETERS, responses=OutputSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        filters = TenantFilter(request.query_params, queryset=tenant_list_with_usage())
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        return paginate(request=request, view=self, queryset=filters.qs, serializer=self.OutputSerializer, ordering="slug")


class AdminTenantGetApi(StaffApiView):
    """One tenant, any status, with usage, member count, quota and suspension."""

    class OutputSerializer(AdminTenantOutputSerializer):
        pass

    @admin_schema("admin_tenants_get", "One tenant", responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        data = self.OutputSerializer(_tenant(slug)).data
        return etag_response(data)


class AdminTenantSuspendApi(StaffApiView):
    """Suspend a tenant: pulls go on, pushes and deletes are refused with a message naming the suspension. Idempotent; 409 while it is being deleted."""

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=MAX_REASON, help_text="Why; kept with the tenant and in the audit log.")

    class OutputSerializer(AdminTenantOutputSerializer):
        pass

    @admin_schema("admin_tenants_suspend", "Suspend a tenant", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        tenant = _tenant(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant_suspend(tenant=tenant, actor=self.actor(), ip=request.META.get("REMOTE_ADDR"), **serializer.validated_data)
        data = self.OutputSerializer(_tenant(slug)).data
        return etag_response(data)


class AdminTenantReactivateApi(StaffApiView):
    """Lift a tenant's suspension. Idempotent; 409 while it is being deleted."""

    class OutputSerializer(AdminTenantOutputSerializer):
        pass

    @admin_schema("admin_tenants_reactivate", "Reactivate a suspended tenant", request=None, responses=OutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        tenant_reactivate(tenant=_tenant(slug), actor=self.actor(), ip=request.META.get("REMOTE_ADDR"))
        data = self.OutputSerializer(_tenant(slug)).data
        return etag_response(data)


class QuotaOutputSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="slug")
    storage_quota_bytes = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")


class AdminQuotaGetApi(StaffApiView):
    """A tenant's storage quota, with the ETag that changing it needs."""

    class OutputSerializer(QuotaOutputSerializer):
        pass

    @admin_schema("admin_tenants_quota_get", "A tenant's storage quota", responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        data = self.OutputSerializer(_tenant(slug)).data
        return etag_response(data)


class AdminQuotaSetApi(StaffApiView):
    """Set or clear (null) a tenant's storage quota; If-Match required; audited; 409 while it is being deleted."""

    class InputSerializer(serializers.Serializer):
        storage_quota_bytes = serializers.IntegerField(min_value=0, allow_null=True, help_text="null: unlimited.")

    class OutputSerializer(QuotaOutputSerializer):
        pass

    @admin_schema(
        "admin_tenants_quota_set",
        "Set or clear a tenant's quota",
        [IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            found = tenant_get_any_status(slug=slug)
            locked = tenant_lock(pk=found.pk) if found is not None else None
            tenant = if_match_locked(request, locked, self.OutputSerializer, f"No tenant {slug!r}.")
            tenant = tenant_quota_change(
                tenant=tenant, actor=self.actor(), ip=request.META.get("REMOTE_ADDR"), **serializer.validated_data
            )
        data = self.OutputSerializer(tenant).data
        return etag_response(data)
