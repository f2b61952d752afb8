"""Invitations (docs/decisions/0022): a tenant's side (/tenants/{slug}/invitations: admins and owners) and the invitee's
(/user/invitations, /invitations/accept).

Only owners invite owners (an admin gets 403); inviting a member is 409; inviting an address with
an open invitation replaces it. The token for the emailed link is in the create response only.
An invitation that is not addressed to the caller's email is 404; one that was accepted, revoked
or has expired is 410.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.invitations import invitation_accept, invitation_create, invitation_revoke
from accounts.models import Invitation, InvitationQuerySet, Membership
from accounts.selectors import invitation_list, invitation_list_for_user
from gateway.api.base import ApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission, UserPrincipalPermission


class InvitationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=Invitation.Status.choices, method="by_status", help_text="Only invitations in this state."
    )

    class Meta:
        model = Invitation
        fields: list[str] = []

    def by_status(self, queryset: InvitationQuerySet, name: str, value: str) -> InvitationQuerySet:
        return queryset.with_status(value)


STATUS_PARAMETER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=Invitation.Status.values,
    description="Only invitations in this state.",
)


class InvitationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    status = serializers.SerializerMethodField()
    invited_by = serializers.CharField(source="invited_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    accepted_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, invitation: Invitation) -> str:
        return invitation.status()


class _TenantInvitationApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "POST": ADMINS, "DELETE": ADMINS}


class InvitationListApi(_TenantInvitationApi):
    """The tenant's invitations, newest first, optionally of one status, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(InvitationOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_invitations_list",
        tags=["invitations"],
        summary="The tenant's invitations (admins and owners)",
        parameters=[STATUS_PARAMETER],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        filters = InvitationFilter(request.query_params, queryset=invitation_list(tenant=request.tenant))  # type: ignore[attr-defined]
        if not filters.is_valid():
            raise serializers.ValidationError(filters.errors)
        return paginate(request=request, view=self, queryset=filters.qs, serializer=self.OutputSerializer, ordering="-pk")


class InvitationCreateApi(_TenantInvitationApi):
    """Invite someone by email with a role; they are mailed a link, and the token is in this response only. Audited."""

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    class OutputSerializer(InvitationOutputSerializer):
        token = serializers.SerializerMethodField(help_text="For the emailed link; shown this once, only its hash is kept.")

        def get_token(self, invitation: Invitation) -> str:
            return self.context["token"]

    @extend_schema(
        operation_id="tenant_invitations_create",
        tags=["invitations"],
        summary="Invite someone by email (only owners invite owners; 409 for a member; replaces an open invitation)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = invitation_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            by_role=request.tenant_role,  # type: ignore[attr-defined]
            invited_by=request.user,  # type: ignore[arg-type]
            actor=self.actor(),
            **serializer.validated_data,
        )
        data = self.OutputSerializer(issued.invitation, context={"token": issued.token}).data
        return Response(data, status=status.HTTP_201_CREATED)


class InvitationRevokeApi(_TenantInvitationApi):
    """Revoke an invitation: its link stops working. Revoking twice is harmless. Audited."""

    @extend_schema(
        operation_id="tenant_invitations_revoke",
        tags=["invitations"],
        summary="Revoke an invitation",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, slug: str, invitation_id: int) -> Response:
        invitation_revoke(tenant=request.tenant, invitation_id=invitation_id, actor=self.actor())  # type: ignore[attr-defined]
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    tenant = serializers.CharField(source="tenant.slug")
    tenant_name = serializers.CharField(source="tenant.name")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    invited_by = serializers.CharField(source="invited_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class AcceptedOutputSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    created_at = serializers.DateTimeField(help_text="When I joined.")


class _MyInvitationApi(ApiView):
    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]


class UserInvitationListApi(_MyInvitationApi):
    """The pending invitations addressed to my email, newest first, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(MyInvitationOutputSerializer):
        pass

    @extend_schema(
        operation_id="user_invitations_list",
        tags=["invitations"],
        summary="Pending invitations addressed to my email",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        invitations = invitation_list_for_user(user=request.user)  # type: ignore[arg-type]
        return paginate(request=request, view=self, queryset=invitations, serializer=self.OutputSerializer, ordering="-pk")


class UserInvitationAcceptApi(_MyInvitationApi):
    """Accept an invitation addressed to my email: I join its tenant with its role. Once; audited."""

    class OutputSerializer(AcceptedOutputSerializer):
        pass

    @extend_schema(
        operation_id="user_invitations_accept",
        extensions={"x-problems": [404, 410]},  # no such invitation for the caller; ended
        tags=["invitations"],
        summary="Accept an invitation addressed to me (410 if accepted, revoked or expired)",
        request=None,
        responses=OutputSerializer,
    )
    def post(self, request: Request, invitation_id: int) -> Response:
        membership = invitation_accept(user=request.user, invitation_id=invitation_id, actor=self.actor())  # type: ignore[arg-type]
        return Response(self.OutputSerializer(membership).data)


class InvitationAcceptApi(_MyInvitationApi):
    """Accept the invitation of an emailed token, as the signed-in user it is addressed to. Once; audited."""

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200, help_text="The token from the invitation's link.")

    class OutputSerializer(AcceptedOutputSerializer):
        pass

    @extend_schema(
        operation_id="invitations_accept",
        extensions={"x-problems": [404, 410]},  # no such invitation for the caller; ended
        tags=["invitations"],
        summary="Accept an invitation by its token (410 if accepted, revoked or expired)",
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = invitation_accept(user=request.user, token=serializer.validated_data["token"], actor=self.actor())  # type: ignore[arg-type]
        return Response(self.OutputSerializer(membership).data)
