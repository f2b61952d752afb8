"""/api/v1/ routes (one view per operation) and the schema and its offline docs under /api/."""

from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from gateway.api.converters import RepositoryNameConverter, TagNameConverter
from gateway.api.routing import operations
from gateway.api.views.invitations import (
    InvitationAcceptApi,
    InvitationCreateApi,
    InvitationListApi,
    InvitationRevokeApi,
    UserInvitationAcceptApi,
    UserInvitationListApi,
)
from gateway.api.views.members import MemberListApi, MemberRemoveApi, MemberRoleSetApi
from gateway.api.views.repositories import (
    RepositoryGetApi,
    RepositoryListApi,
    RepositoryUpdateApi,
    TagDeleteApi,
    TagGetApi,
    TagListApi,
)
from gateway.api.views.robots import RobotCreateApi, RobotListApi, RobotRevokeApi, RobotRotateApi, RobotUpdateApi
from gateway.api.views.tenants import TenantCreateApi, TenantDeleteApi, TenantGetApi, TenantListApi, TenantUpdateApi
from gateway.api.views.tokens import TokenCreateApi, TokenListApi, TokenRevokeApi
from gateway.api.views.user import UserGetApi

register_converter(RepositoryNameConverter, "repository")
register_converter(TagNameConverter, "tag")
REPOSITORY = "tenants/<str:slug>/repositories/<repository:name>"

v1 = [
    path("user", UserGetApi.as_view(), name="user-get"),
    *operations("user/tokens", "user-tokens", GET=TokenListApi, POST=TokenCreateApi),
    path("user/tokens/<int:token_id>", TokenRevokeApi.as_view(), name="user-token-revoke"),
    *operations("tenants", "tenants", GET=TenantListApi, POST=TenantCreateApi),
    *operations("tenants/<str:slug>", "tenant", GET=TenantGetApi, PATCH=TenantUpdateApi, DELETE=TenantDeleteApi),
    *operations("tenants/<str:slug>/robots", "tenant-robots", GET=RobotListApi, POST=RobotCreateApi),
    *operations("tenants/<str:slug>/robots/<str:name>", "tenant-robot", PATCH=RobotUpdateApi, DELETE=RobotRevokeApi),
    path("tenants/<str:slug>/robots/<str:name>/rotate", RobotRotateApi.as_view(), name="tenant-robot-rotate"),
    path("tenants/<str:slug>/members", MemberListApi.as_view(), name="tenant-members-list"),
    *operations("tenants/<str:slug>/members/<str:username>", "tenant-member", PATCH=MemberRoleSetApi, DELETE=MemberRemoveApi),
    path("tenants/<str:slug>/repositories", RepositoryListApi.as_view(), name="repositories-list"),
    *operations(REPOSITORY, "repository", GET=RepositoryGetApi, PATCH=RepositoryUpdateApi),
    path(f"{REPOSITORY}/-/tags", TagListApi.as_view(), name="repository-tags-list"),
    *operations(f"{REPOSITORY}/-/tags/<tag:tag>", "repository-tag", GET=TagGetApi, DELETE=TagDeleteApi),
    *operations("tenants/<str:slug>/invitations", "tenant-invitations", GET=InvitationListApi, POST=InvitationCreateApi),
    path("tenants/<str:slug>/invitations/<int:invitation_id>", InvitationRevokeApi.as_view(), name="tenant-invitation-revoke"),
    path("user/invitations", UserInvitationListApi.as_view(), name="user-invitations-list"),
    path("user/invitations/<int:invitation_id>/accept", UserInvitationAcceptApi.as_view(), name="user-invitation-accept"),
    path("invitations/accept", InvitationAcceptApi.as_view(), name="invitations-accept"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
