"""The caller: GET /api/v1/user."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import membership_list
from gateway.api.base import ApiView
from gateway.api.permissions import UserPrincipalPermission


class MembershipOutputSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    tenant_name = serializers.CharField(source="tenant.name")
    tenant_status = serializers.CharField(source="tenant.status")
    role = serializers.CharField()


class UserGetApi(ApiView):
    """Who I am: my profile and my memberships with their roles."""

    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        email = serializers.EmailField()
        is_staff = serializers.BooleanField()
        date_joined = serializers.DateTimeField()
        memberships = MembershipOutputSerializer(many=True)

    @extend_schema(
        operation_id="user_get", tags=["user"], summary="The caller's profile and memberships", responses=OutputSerializer
    )
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "username": user.username,
            "email": getattr(user, "email", ""),
            "is_staff": user.is_staff,
            "date_joined": getattr(user, "date_joined", None),
            "memberships": membership_list(user=user),  # type: ignore[arg-type]
        }
        return Response(self.OutputSerializer(data).data)
