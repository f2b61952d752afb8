"""Tenants: list mine, create one, get, update (display name, download mode) and delete (docs/decisions/0022).

GET, PATCH and DELETE of one tenant carry its `ETag`; PATCH and DELETE need `If-Match`.
DELETE marks the tenant deleting and answers 202 with the `Location` of the job that purges it;
meanwhile only GET of the tenant (and its jobs) still answer, every other operation on it is 404.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.locks import tenant_lock
from accounts.models import Membership, Tenant
from accounts.selectors import tenant_list_for_robot, tenant_list_for_user
from accounts.tenants import tenant_update
from accounts.validators import validate_tenant_slug
from billing.services import tenant_open
from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, etag_set, if_match_check
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, ROBOT, TenantMemberPermission, UserPrincipalPermission
from gateway.core.errors import NotFound
from gateway.core.errors import ValidationError as DomainValidationError
from gateway.registry.services.tenant_delete import tenant_delete_start

DOWNLOAD_MODES = {"proxied": False, "redirect": True}


class TenantOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Tenant.Status.choices)
    download_mode = serializers.SerializerMethodField()
    storage_quota_bytes = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_download_mode(self, tenant: Tenant) -> str:
        return "redirect" if tenant.redirect_blob_downloads else "proxied"


class TenantDetailSerializer(TenantOutputSerializer):
    role = serializers.SerializerMethodField(help_text="My role in it ('robot' for a robot account).")

    def get_role(self, tenant: Tenant) -> str:
        return self.context["role"]


def _detail(tenant: Tenant, role: str) -> dict[str, Any]:
    return TenantDetailSerializer(tenant, context={"role": role}).data


def _slug(value: str) -> None:
    try:
        validate_tenant_slug(value)
    except DomainValidationError as exc:
        raise serializers.ValidationError(exc.message) from None


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


class TenantCreateApi(ApiView):
    """Create a tenant; the caller (a user, staff or not; never a robot) becomes its owner. Audited."""

    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]

    class InputSerializer(serializers.Serializer):
        slug = serializers.CharField(max_length=63, validators=[_slug], help_text="A DNS label, not reserved; never changes.")
        name = serializers.CharField(max_length=200, required=False, default="", help_text="Display name (default: the slug).")

    class OutputSerializer(TenantDetailSerializer):
        pass

    @extend_schema(
        operation_id="tenants_create",
        tags=["tenants"],
        summary="Create a tenant (I become its owner; 409 if the slug is taken)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = tenant_open(owner=request.user, actor=self.actor(), **serializer.validated_data)  # type: ignore[arg-type]
        data = self.OutputSerializer(tenant, context={"role": Membership.Role.OWNER.value}).data
        response = Response(data, status=status.HTTP_201_CREATED, headers={"Location": f"/api/v1/tenants/{tenant.slug}"})
        return etag_set(response, data)


class TenantGetApi(ApiView):
    """One tenant I am a member of, with my role; 404 for any other."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}
    deleting_tenant_visible = True  # members follow a deletion here (status "deleting") until it is gone

    class OutputSerializer(TenantDetailSerializer):
        pass

    @extend_schema(
        operation_id="tenants_get", tags=["tenants"], summary="One tenant I am a member of", responses=OutputSerializer
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, role = request.tenant, request.tenant_role  # type: ignore[attr-defined]
        data = self.OutputSerializer(tenant, context={"role": role}).data
        return etag_response(data)


def _locked(request: Request) -> Tenant:
    """The URL's tenant, row-locked, after checking If-Match against the representation its GET shows the caller."""
    tenant = tenant_lock(pk=request.tenant.pk)  # type: ignore[attr-defined]
    if tenant is None:
        raise NotFound(f"No tenant {request.tenant.slug!r}.")  # type: ignore[attr-defined]
    if_match_check(request, _detail(tenant, request.tenant_role))  # type: ignore[attr-defined]
    return tenant


class TenantUpdateApi(ApiView):
    """Change a tenant's display name or download mode (only the fields sent). Admins and owners; If-Match; audited."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"PATCH": ADMINS}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        download_mode = serializers.ChoiceField(
            choices=list(DOWNLOAD_MODES),
            required=False,
            help_text="Blob pulls: `redirect` (307 to a presigned URL) or `proxied` (streamed through the gateway).",
        )

    class OutputSerializer(TenantDetailSerializer):
        pass

    @extend_schema(
        operation_id="tenants_update",
        tags=["tenants"],
        summary="Change a tenant's display name or download mode",
        parameters=[IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        mode = fields.get("download_mode")
        with transaction.atomic():
            tenant = tenant_update(
                tenant=_locked(request),
                name=fields.get("name"),
                redirect_blob_downloads=DOWNLOAD_MODES[mode] if mode is not None else None,
                actor=self.actor(),
            )
        data = self.OutputSerializer(tenant, context={"role": request.tenant_role}).data  # type: ignore[attr-defined]
        return etag_response(data)


class TenantDeleteApi(ApiView):
    """Delete a tenant and everything it owns, in the background: 202 with the job's Location. Owners only; If-Match; audited."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"DELETE": frozenset({Membership.Role.OWNER.value})}

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="pk", help_text="The job that purges the tenant.")
        kind = serializers.CharField()
        state = serializers.CharField()
        started_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="tenants_delete",
        tags=["tenants"],
        summary="Delete a tenant (its repositories, images and bucket objects) in the background",
        parameters=[IF_MATCH],
        responses={202: OpenApiResponse(OutputSerializer, description="Deletion started; `Location` names its job.")},
    )
    def delete(self, request: Request, slug: str) -> Response:
        with transaction.atomic():
            job = tenant_delete_start(tenant=_locked(request), actor=self.actor())
        location = f"/api/v1/tenants/{slug}/jobs/{job.pk}"
        return Response(self.OutputSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
