"""A tenant's members: /api/v1/tenants/{slug}/members (list: any member; change role, remove: admins and owners).

Only owners make, demote or remove owners (an admin gets 403); the last owner can never be
demoted or removed (409). Roles are edited concurrently: GET of one member and the change
carry an `ETag`; changing or removing needs `If-Match` (428 without, 412 when it changed; decisions/0020).
The view takes the same locks as the service (all of the tenant's memberships, pk order) before
it compares, so nobody changes the member between the check and the write, and no deadlock.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.locks import memberships_lock
from accounts.models import Membership
from accounts.selectors import tenant_membership_get, tenant_membership_list
from accounts.services import membership_remove, membership_role_set
from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_locked
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, TenantMemberPermission
from gateway.core.errors import NotFound

MEMBER_EXAMPLE = OpenApiExample(
    "member", value={"username": "rita", "role": "writer", "created_at": "2026-03-01T09:30:00Z"}, response_only=True
)


class MemberOutputSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    created_at = serializers.DateTimeField(help_text="When they joined.")


class _MemberApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE, "PATCH": ADMINS, "DELETE": ADMINS}


class MemberListApi(_MemberApi):
    """The tenant's members with their roles, oldest first, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(MemberOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_members_list",
        tags=["members"],
        summary="The tenant's members and their roles (any member)",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        members = tenant_membership_list(tenant=request.tenant)  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=members, serializer=self.OutputSerializer, ordering="pk")


def _if_match_locked(request: Request, username: str) -> None:
    """Lock the tenant's memberships (as the services do) and check If-Match against the member's representation now."""
    tenant = request.tenant  # type: ignore[attr-defined]
    membership = next((m for m in memberships_lock(tenant=tenant) if m.user.username == username), None)
    if_match_locked(request, membership, MemberGetApi.OutputSerializer, f"{username!r} is not a member of {tenant.slug!r}.")


class MemberGetApi(_MemberApi):
    """One member and their role, with the `ETag` that changing or removing them needs."""

    class OutputSerializer(MemberOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_members_get",
        tags=["members"],
        summary="One member and their role (any member); its ETag is what If-Match of a change names",
        responses=OutputSerializer,
        examples=[MEMBER_EXAMPLE],
    )
    def get(self, request: Request, slug: str, username: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        membership = tenant_membership_get(tenant=tenant, username=username)
        if membership is None:
            raise NotFound(f"{username!r} is not a member of {tenant.slug!r}.")
        data = self.OutputSerializer(membership).data
        return etag_response(data)


class MemberRoleSetApi(_MemberApi):
    """Change a member's role. Audited."""

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    class OutputSerializer(MemberOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_members_role_set",
        tags=["members"],
        summary="Change a member's role (only owners grant or take away owner; the last owner stays)",
        parameters=[IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
        examples=[OpenApiExample("demote to writer", value={"role": "writer"}, request_only=True), MEMBER_EXAMPLE],
    )
    def patch(self, request: Request, slug: str, username: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            _if_match_locked(request, username)
            membership = membership_role_set(
                tenant=request.tenant,  # type: ignore[attr-defined]
                username=username,
                role=serializer.validated_data["role"],
                by_role=request.tenant_role,  # type: ignore[attr-defined]
                actor=self.actor(),
            )
        data = self.OutputSerializer(membership).data
        return etag_response(data)


class MemberRemoveApi(_MemberApi):
    """Remove a member from the tenant. Audited."""

    @extend_schema(
        operation_id="tenant_members_remove",
        tags=["members"],
        summary="Remove a member (only owners remove owners; never the last owner)",
        parameters=[IF_MATCH],
        responses={204: OpenApiResponse(description="Removed.")},
    )
    def delete(self, request: Request, slug: str, username: str) -> Response:
        with transaction.atomic():
            _if_match_locked(request, username)
            membership_remove(
                tenant=request.tenant,  # type: ignore[attr-defined]
                username=username,
                by_role=request.tenant_role,  # type: ignore[attr-defined]
                actor=self.actor(),
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
