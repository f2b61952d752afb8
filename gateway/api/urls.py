"""/api/v1/ routes (one view per operation) and the schema and its offline docs under /api/."""

from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from gateway.api.converters import RepositoryNameConverter, TagNameConverter
from gateway.api.routing import operations
from gateway.api.views.jobs import AdminJobListApi, JobCreateApi, JobGetApi, JobListApi
from gateway.api.views.members import MemberListApi, MemberRemoveApi, MemberRoleSetApi
from gateway.api.views.repositories import (
    RepositoryDeleteApi,
    RepositoryGetApi,
    RepositoryListApi,
    RepositoryUpdateApi,
    TagDeleteApi,
    TagGetApi,
    TagListApi,
)
from gateway.api.views.robots import RobotCreateApi, RobotListApi, RobotRevokeApi, RobotRotateApi, RobotUpdateApi
from gateway.api.views.tenants import TenantGetApi, TenantListApi
from gateway.api.views.tokens import TokenCreateApi, TokenListApi, TokenRevokeApi
from gateway.api.views.user import UserGetApi

register_converter(RepositoryNameConverter, "repository")
register_converter(TagNameConverter, "tag")
REPOSITORY = "tenants/<str:slug>/repositories/<repository:name>"

v1 = [
    path("user", UserGetApi.as_view(), name="user-get"),
    *operations("user/tokens", "user-tokens", GET=TokenListApi, POST=TokenCreateApi),
    path("user/tokens/<int:token_id>", TokenRevokeApi.as_view(), name="user-token-revoke"),
    path("tenants", TenantListApi.as_view(), name="tenants-list"),
    path("tenants/<str:slug>", TenantGetApi.as_view(), name="tenants-get"),
    *operations("tenants/<str:slug>/robots", "tenant-robots", GET=RobotListApi, POST=RobotCreateApi),
    *operations("tenants/<str:slug>/robots/<str:name>", "tenant-robot", PATCH=RobotUpdateApi, DELETE=RobotRevokeApi),
    path("tenants/<str:slug>/robots/<str:name>/rotate", RobotRotateApi.as_view(), name="tenant-robot-rotate"),
    path("tenants/<str:slug>/members", MemberListApi.as_view(), name="tenant-members-list"),
    *operations("tenants/<str:slug>/members/<str:username>", "tenant-member", PATCH=MemberRoleSetApi, DELETE=MemberRemoveApi),
    path("tenants/<str:slug>/repositories", RepositoryListApi.as_view(), name="repositories-list"),
    *operations(REPOSITORY, "repository", GET=RepositoryGetApi, PATCH=RepositoryUpdateApi, DELETE=RepositoryDeleteApi),
    path(f"{REPOSITORY}/-/tags", TagListApi.as_view(), name="repository-tags-list"),
    *operations(f"{REPOSITORY}/-/tags/<tag:tag>", "repository-tag", GET=TagGetApi, DELETE=TagDeleteApi),
    *operations("tenants/<str:slug>/jobs", "tenant-jobs", GET=JobListApi, POST=JobCreateApi),
    path("tenants/<str:slug>/jobs/<int:job_id>", JobGetApi.as_view(), name="tenant-job"),
    path("admin/jobs", AdminJobListApi.as_view(), name="admin-jobs-list"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
