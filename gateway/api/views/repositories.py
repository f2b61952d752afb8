"""A tenant's repositories and their tags: /api/v1/tenants/{slug}/repositories[/{name}[/-/tags[/{tag}]]].

Names contain `/`, so the tags live under `/-/` (gateway/api/converters.py). Who may do what
mirrors /v2/ (gateway/registry/access.py): every member reads; deleting a tag is the `delete`
action, which only admins and owners have; changing visibility (exposing a repository to
anonymous pulls) is tenant management, for the same roles. A token limited to repository
patterns sees only matching repositories (others are 404), as on /v2/.
"""

from __future__ import annotations

from datetime import tzinfo

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.principals import Principal
from gateway.api.base import ApiView, iso_datetime, paginate_rows
from gateway.api.filtering import cleaned, filter_parameters, filtered
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ANY_ROLE, ROBOT, TenantMemberPermission
from gateway.api.views.jobs import JobOutputSerializer, job_location
from gateway.core.errors import Conflict, NotFound
from gateway.registry import selectors
from gateway.registry.access import ROLE_ACTIONS
from gateway.registry.errors import Denied, ManifestUnknown
from gateway.registry.models import Repository
from gateway.registry.services.manifests import manifest_delete
from gateway.registry.services.repositories import repository_update
from gateway.registry.services.repository_delete import repository_delete_start

# The roles whose registry actions include `delete` (admin, owner): they delete tags and change visibility.
MANAGE_ROLES = frozenset(role for role, actions in ROLE_ACTIONS.items() if "delete" in actions)
SORTS = {
    "name": ("name", "pk"),
    "-name": ("-name", "-pk"),
    "last_pushed_at": ("last_pushed_at", "pk"),
    "-last_pushed_at": ("-last_pushed_at", "-pk"),
}

NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="Repository name; may contain `/`.")
TAG = OpenApiParameter("tag", OpenApiTypes.STR, OpenApiParameter.PATH, description="Tag name.")


REPOSITORY_EXAMPLE = OpenApiExample(
    "repository",
    value={
        "name": "team/app",
        "visibility": "private",
        "tag_count": 3,
        "last_pushed_at": "2026-03-02T10:00:00Z",
        "created_at": "2026-03-01T09:30:00Z",
        "stored_bytes": 73400320,
        "last_pulled_at": "2026-03-03T08:15:00Z",
    },
    response_only=True,
)
TAG_EXAMPLE = OpenApiExample(
    "tag",
    value={
        "name": "v1",
        "digest": "sha256:" + "3" * 64,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 1024,
        "pushed_at": "2026-03-02T10:00:00Z",
        "last_pulled_at": None,
        "immutable": False,
    },
    response_only=True,
)


def _patterns(request: Request) -> tuple[str, ...]:
    return request.auth.repositories if isinstance(request.auth, Principal) else ()


def _repository(request: Request, name: str) -> Repository:
    """The URL's repository in the URL's tenant, if the caller's token may see it; else 404."""
    tenant = request.tenant  # type: ignore[attr-defined]
    repository = selectors.repository_get(tenant=tenant, name=name)
    principal = request.auth if isinstance(request.auth, Principal) else None
    if repository is None or (principal is not None and not principal.repository_allowed(name)):
        raise NotFound(f"No repository {name!r} in {tenant.slug!r}.")
    return repository


class RepositoryFilter(django_filters.FilterSet):
    """`?prefix=&visibility=&sort=` of the repository list (sort picks the cursor's ordering, see RepositoryListApi)."""

    prefix = django_filters.CharFilter(
        field_name="name", lookup_expr="startswith", max_length=255, strip=False, help_text="Only names that start with this."
    )
    visibility = django_filters.ChoiceFilter(choices=Repository.Visibility.choices, help_text="Only this visibility.")
    sort = django_filters.ChoiceFilter(
        choices=[(key, key) for key in SORTS], method="ordering_only", help_text="The order (default `name`)."
    )

    def ordering_only(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset  # the paginator orders (a cursor needs to know the ordering)


class TagFilter(django_filters.FilterSet):
    """`?prefix=` of a repository's tag list."""

    prefix = django_filters.CharFilter(
        field_name="name", lookup_expr="startswith", max_length=128, strip=False, help_text="Only tags that start with this."
    )


def _detail(tenant: object, repository: Repository) -> dict:
    """A repository's detail representation: its own fields and its stats."""
    stats = selectors.repository_stats(tenant=tenant, repository=repository)  # type: ignore[arg-type]
    fields = {f: getattr(repository, f) for f in ("name", "visibility", "description", "created_at")}
    return {**fields, **stats}


class RepositoryOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    visibility = serializers.ChoiceField(choices=Repository.Visibility.choices)
    description = serializers.CharField(help_text="Free text, at most 1000 characters (empty: none).")
    tag_count = serializers.IntegerField()
    last_pushed_at = serializers.DateTimeField(allow_null=True, help_text="When a tag was last pushed (null: none yet).")
    created_at = serializers.DateTimeField()


def _repository_item(row: dict, tz: tzinfo) -> dict:
    """A repository_rows() row as RepositoryOutputSerializer writes it (same fields, order and types)."""
    return {
        "name": row["name"],
        "visibility": row["visibility"],
        "description": row["description"],
        "tag_count": row["tag_count"],
        "last_pushed_at": iso_datetime(row["last_pushed_at"], tz),
        "created_at": iso_datetime(row["created_at"], tz),
    }


class RepositoryDetailSerializer(RepositoryOutputSerializer):
    stored_bytes = serializers.IntegerField(help_text="Its manifests and the blobs linked into it (shared blobs count in each).")
    last_pulled_at = serializers.DateTimeField(allow_null=True)


class RepositoryListApi(ApiView):
    """The tenant's repositories, filtered by name prefix and visibility, sorted by name or last push."""

    pagination_class = ApiCursorPagination
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}  # a robot reads its tenant's repositories and tags

    class OutputSerializer(RepositoryOutputSerializer):
        pass

    @extend_schema(
        operation_id="repositories_list",
        tags=["repositories"],
        summary="The tenant's repositories",
        parameters=filter_parameters(RepositoryFilter),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        everything = selectors.repository_rows(tenant=tenant, patterns=_patterns(request))
        repositories, values = cleaned(request, RepositoryFilter, everything)
        ordering = SORTS[values.get("sort") or "name"]
        return paginate_rows(request=request, view=self, rows=repositories, represent=_repository_item, ordering=ordering)


class RepositoryGetApi(ApiView):
    """One repository with its tag count, stored bytes and last push and pull."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}  # a robot reads its tenant's repositories and tags

    class OutputSerializer(RepositoryDetailSerializer):
        pass

    @extend_schema(
        operation_id="repositories_get",
        tags=["repositories"],
        summary="One repository",
        parameters=[NAME],
        responses=OutputSerializer,
        examples=[REPOSITORY_EXAMPLE],
    )
    def get(self, request: Request, slug: str, name: str) -> Response:
        repository = _repository(request, name)
        return Response(self.OutputSerializer(_detail(request.tenant, repository)).data)  # type: ignore[attr-defined]


class RepositoryUpdateApi(ApiView):
    """Change a repository's visibility (public: anonymous pulls) or description (only the fields sent). Admins and owners; audited."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"PATCH": MANAGE_ROLES}

    class InputSerializer(serializers.Serializer):
        visibility = serializers.ChoiceField(choices=Repository.Visibility.choices, required=False)
        description = serializers.CharField(max_length=1000, allow_blank=True, trim_whitespace=False, required=False)

        def validate(self, attrs: dict) -> dict:
            if not attrs:
                raise serializers.ValidationError("Send visibility, description or both.")
            return attrs

    class OutputSerializer(RepositoryDetailSerializer):
        pass

    @extend_schema(
        operation_id="repositories_update",
        tags=["repositories"],
        summary="Change a repository's visibility or description",
        parameters=[NAME],
        request=InputSerializer,
        responses=OutputSerializer,
        examples=[OpenApiExample("make public", value={"visibility": "public"}, request_only=True), REPOSITORY_EXAMPLE],
    )
    def patch(self, request: Request, slug: str, name: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        _repository(request, name)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        repository = repository_update(tenant=tenant, name=name, actor=self.actor(), **serializer.validated_data)
        return Response(self.OutputSerializer(_detail(tenant, repository)).data)


class RepositoryDeleteApi(ApiView):
    """Delete a repository: gone from the registry at once (its name free for new pushes), emptied by a job. Admins and owners; audited."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"DELETE": MANAGE_ROLES}

    class OutputSerializer(JobOutputSerializer):
        pass

    @extend_schema(
        operation_id="repositories_delete",
        tags=["repositories"],
        summary="Delete a repository: 202 with the repository_delete job (409 if an immutable tag pins it)",
        parameters=[NAME],
        responses={202: OutputSerializer},
    )
    def delete(self, request: Request, slug: str, name: str) -> Response:
        _repository(request, name)
        job = repository_delete_start(
            tenant=request.tenant,  # type: ignore[attr-defined]
            name=name,
            actor=self.actor(),
            ip=request.META.get("REMOTE_ADDR"),
        )
        data = self.OutputSerializer(job).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": job_location(slug, job)})


class TagOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    size = serializers.IntegerField(source="manifest.size", help_text="The manifest's size in bytes.")
    pushed_at = serializers.DateTimeField(source="last_pushed_at")
    last_pulled_at = serializers.DateTimeField(allow_null=True)
    immutable = serializers.BooleanField()


def _tag_item(row: dict, tz: tzinfo) -> dict:
    """A tag_rows() row as TagOutputSerializer writes it (same fields, order and types)."""
    return {
        "name": row["name"],
        "digest": row["manifest__digest"],
        "media_type": row["manifest__media_type"],
        "size": row["manifest__size"],
        "pushed_at": iso_datetime(row["last_pushed_at"], tz),
        "last_pulled_at": iso_datetime(row["last_pulled_at"], tz),
        "immutable": row["immutable"],
    }


class TagListApi(ApiView):
    """A repository's tags by name, a page at a time."""

    pagination_class = ApiCursorPagination
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}  # a robot reads its tenant's repositories and tags

    class OutputSerializer(TagOutputSerializer):
        pass

    @extend_schema(
        operation_id="repositories_tags_list",
        tags=["repositories"],
        summary="A repository's tags, by name",
        parameters=[NAME, *filter_parameters(TagFilter)],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str, name: str) -> Response:
        repository = _repository(request, name)
        tags = filtered(request, TagFilter, selectors.tag_rows(tenant=request.tenant, repository=repository))  # type: ignore[attr-defined]
        return paginate_rows(request=request, view=self, rows=tags, represent=_tag_item, ordering="name")


class TagGetApi(ApiView):
    """One tag: the manifest it names (digest, media type, size), when it was pushed, whether it is immutable."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}  # a robot reads its tenant's repositories and tags

    class OutputSerializer(TagOutputSerializer):
        pass

    @extend_schema(
        operation_id="repositories_tags_get",
        tags=["repositories"],
        summary="One tag",
        parameters=[NAME, TAG],
        responses=OutputSerializer,
        examples=[TAG_EXAMPLE],
    )
    def get(self, request: Request, slug: str, name: str, tag: str) -> Response:
        repository = _repository(request, name)
        found = selectors.tag_get(tenant=request.tenant, repository=repository, name=tag)  # type: ignore[attr-defined]
        if found is None:
            raise NotFound(f"No tag {tag!r} in {name!r}.")
        return Response(self.OutputSerializer(found).data)


class TagDeleteApi(ApiView):
    """Delete a tag as /v2/ DELETE by tag does (the manifest stays; events, object deletion, audit). Admins and owners."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"DELETE": MANAGE_ROLES}

    @extend_schema(
        operation_id="repositories_tags_delete",
        tags=["repositories"],
        summary="Delete a tag (409 if it is immutable)",
        parameters=[NAME, TAG],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, slug: str, name: str, tag: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        repository = _repository(request, name)
        try:
            manifest_delete(
                tenant=tenant, repository=repository, reference=tag, actor=self.actor(), ip=request.META.get("REMOTE_ADDR")
            )
        except ManifestUnknown:
            raise NotFound(f"No tag {tag!r} in {name!r}.") from None
        except Denied as exc:
            raise Conflict(exc.message) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
