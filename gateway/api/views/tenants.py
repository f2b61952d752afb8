"""Tenants: GET /api/v1/tenants (mine) and GET /api/v1/tenants/{slug}."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Tenant
from accounts.selectors import tenant_list_for_robot, tenant_list_for_user
from gateway.api.base import ApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ANY_ROLE, ROBOT, TenantMemberPermission


class TenantOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Tenant.Status.choices)
    download_mode = serializers.SerializerMethodField()
    storage_quota_bytes = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_download_mode(self, tenant: Tenant) -> str:
        return "redirect" if tenant.redirect_blob_downloads else "proxied"


class TenantListApi(ApiView):
    """The tenants I am a member of (a robot: its own), by slug, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(TenantOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenants_list",
        tags=["tenants"],
        summary="The tenants I am a member of, by slug",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        robot = getattr(request.user, "robot", None)
        if robot is not None:
            tenants = tenant_list_for_robot(robot=robot)
        else:
            tenants = tenant_list_for_user(user=request.user)  # type: ignore[arg-type]
        return paginate(request=request, view=self, queryset=tenants, serializer=self.OutputSerializer, ordering="slug")


class TenantGetApi(ApiView):
    """One tenant I am a member of, with my role; 404 for any other."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}

    class OutputSerializer(TenantOutputSerializer):
        role = serializers.SerializerMethodField(help_text="My role in it ('robot' for a robot account).")

        def get_role(self, tenant: Tenant) -> str:
            return self.context["role"]

    @extend_schema(
        operation_id="tenants_get", tags=["tenants"], summary="One tenant I am a member of", responses=OutputSerializer
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, role = request.tenant, request.tenant_role  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(tenant, context={"role": role}).data)
