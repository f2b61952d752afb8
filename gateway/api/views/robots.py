"""A tenant's robot accounts: /api/v1/tenants/{slug}/robots (list, create, update, rotate, revoke) — admins and owners."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import RobotAccount, TokenScope
from accounts.selectors import tenant_robot_list
from accounts.services import robot_create, robot_revoke, robot_rotate, robot_update
from gateway.api.base import ApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission

ROBOT_SCOPES = [(value, label) for value, label in TokenScope.choices if value != TokenScope.ADMIN]


class RobotOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    username = serializers.CharField(help_text="`<tenant>+<name>`, for `docker login`.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ROBOT_SCOPES))
    repositories = serializers.ListField(child=serializers.CharField(), help_text="fnmatch patterns; empty = all.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class _SecretOutputSerializer(RobotOutputSerializer):
    secret = serializers.SerializerMethodField(help_text="Shown this once; only its hash is kept.")

    def get_secret(self, robot: RobotAccount) -> str:
        return self.context["secret"]


class _RobotApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "POST": ADMINS, "PATCH": ADMINS, "DELETE": ADMINS}


class RobotListApi(_RobotApi):
    """The tenant's robot accounts by name (revoked and expired ones included), a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(RobotOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_robots_list",
        tags=["robots"],
        summary="The tenant's robot accounts, by name (admins and owners)",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        robots = tenant_robot_list(tenant=request.tenant)  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=robots, serializer=self.OutputSerializer, ordering="name")


class RobotCreateApi(_RobotApi):
    """Create a robot account; its secret is in this response only. Audited."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=63)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ROBOT_SCOPES), allow_empty=False)
        repositories = serializers.ListField(child=serializers.CharField(max_length=255), default=list, max_length=100)
        expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, default=None)

    class OutputSerializer(_SecretOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_robots_create",
        tags=["robots"],
        summary="Create a robot account (the secret is in this response only)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = robot_create(tenant=request.tenant, actor=self.actor(), **serializer.validated_data)  # type: ignore[attr-defined]
        data = self.OutputSerializer(issued.robot, context={"secret": issued.secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


class RobotUpdateApi(_RobotApi):
    """Change a live robot's scopes, repository patterns or expiry (only the fields sent). Audited."""

    class InputSerializer(serializers.Serializer):
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ROBOT_SCOPES), allow_empty=False, required=False)
        repositories = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100, required=False)
        expires_in_days = serializers.IntegerField(
            min_value=1, max_value=3650, allow_null=True, required=False, help_text="From now; null: never expires."
        )

    class OutputSerializer(RobotOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_robots_update",
        tags=["robots"],
        summary="Change a robot's scopes, repository patterns or expiry",
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        robot = robot_update(tenant=request.tenant, name=name, actor=self.actor(), **serializer.validated_data)  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(robot).data)


class RobotRotateApi(_RobotApi):
    """Give a robot a new secret (in this response only); the old one stops working at once. Audited."""

    class OutputSerializer(_SecretOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_robots_rotate",
        tags=["robots"],
        summary="Rotate a robot's secret (the new one is in this response only)",
        request=None,
        responses=OutputSerializer,
    )
    def post(self, request: Request, slug: str, name: str) -> Response:
        issued = robot_rotate(tenant=request.tenant, name=name, actor=self.actor())  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(issued.robot, context={"secret": issued.secret}).data)


class RobotRevokeApi(_RobotApi):
    """Revoke a robot and its refresh tokens; the row (and name) stays. Audited."""

    @extend_schema(
        operation_id="tenant_robots_revoke",
        tags=["robots"],
        summary="Revoke a robot account; revoking twice is harmless",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, slug: str, name: str) -> Response:
        robot_revoke(tenant=request.tenant, name=name, actor=self.actor())  # type: ignore[attr-defined]
        return Response(status=status.HTTP_204_NO_CONTENT)
