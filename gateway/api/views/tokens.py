"""The caller's personal access tokens: /api/v1/user/tokens (list, create — secret shown once —, revoke)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import TokenScope
from accounts.selectors import access_token_list
from accounts.services import REGISTRY_SCOPES, access_token_issue, access_token_revoke
from gateway.api.base import ApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import UserPrincipalPermission


class TokenOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The secret's first characters, to tell tokens apart.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=TokenScope.choices))
    repositories = serializers.ListField(child=serializers.CharField(), help_text="fnmatch patterns; empty = all.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class TokenListApi(ApiView):
    """My personal access tokens, newest first (revoked and expired ones included), a page at a time."""

    pagination_class = ApiCursorPagination
    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]

    class OutputSerializer(TokenOutputSerializer):
        pass

    @extend_schema(
        operation_id="user_tokens_list",
        tags=["user"],
        summary="My personal access tokens, newest first",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        tokens = access_token_list(user=request.user)  # type: ignore[arg-type]
        return paginate(request=request, view=self, queryset=tokens, serializer=self.OutputSerializer, ordering="-pk")


class TokenCreateApi(ApiView):
    """Issue a personal access token for me; its secret is in this response only. Audited."""

    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=TokenScope.choices), allow_empty=False, default=list(REGISTRY_SCOPES)
        )
        repositories = serializers.ListField(child=serializers.CharField(max_length=255), default=list, max_length=100)
        expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, allow_null=True, default=None)

    class OutputSerializer(TokenOutputSerializer):
        secret = serializers.SerializerMethodField(help_text="Shown this once; only its hash is kept.")

        def get_secret(self, token: object) -> str:
            return self.context["secret"]

    @extend_schema(
        operation_id="user_tokens_create",
        tags=["user"],
        summary="Issue a personal access token (the secret is in this response only)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = access_token_issue(user=request.user, actor=self.actor(), **serializer.validated_data)  # type: ignore[arg-type]
        data = self.OutputSerializer(issued.token, context={"secret": issued.secret}).data
        return Response(data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(ApiView):
    """Revoke one of my tokens. Audited."""

    permission_classes = [*ApiView.permission_classes, UserPrincipalPermission]

    @extend_schema(
        operation_id="user_tokens_revoke",
        tags=["user"],
        summary="Revoke one of my tokens (and the refresh tokens issued through it); revoking twice is harmless",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        access_token_revoke(user=request.user, token_id=token_id, actor=self.actor())  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
