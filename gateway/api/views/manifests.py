"""Manifests and artifacts by digest: /api/v1/tenants/{slug}/repositories/{name}/-/manifests/{digest}.

GET shows what a manifest is (media and artifact type, size, the image config's os, architecture,
creation time and labels, layers, an index's platform children, referrers, the tags naming it).
DELETE removes it and its tags as /v2/ DELETE by digest does (gateway/registry/services/manifests.py):
409 while an index or an immutable tag (flag or rule) holds it. Who may do what is as for tags
(views/repositories.py): every member reads, admins and owners delete.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView
from gateway.api.permissions import ANY_ROLE, ROBOT, TenantMemberPermission
from gateway.api.views.repositories import MANAGE_ROLES, NAME, _repository
from gateway.core.errors import Conflict, NotFound
from gateway.registry.digests import is_digest
from gateway.registry.errors import Denied, ManifestUnknown
from gateway.registry.manifest_selectors import manifest_detail
from gateway.registry.services.manifests import manifest_delete

DIGEST = OpenApiParameter("digest", OpenApiTypes.STR, OpenApiParameter.PATH, description="Manifest digest (`sha256:…`).")


class _DescriptorSerializer(serializers.Serializer):
    media_type = serializers.CharField()
    digest = serializers.CharField()
    size = serializers.IntegerField()


class _ConfigSerializer(_DescriptorSerializer):
    os = serializers.CharField(allow_null=True)
    architecture = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    created = serializers.CharField(allow_null=True, help_text="As the image config states it (RFC 3339).")
    labels = serializers.DictField(child=serializers.CharField())


class _PlatformSerializer(serializers.Serializer):
    os = serializers.CharField(allow_null=True)
    architecture = serializers.CharField(allow_null=True)
    variant = serializers.CharField(allow_null=True)
    os_version = serializers.CharField(allow_null=True)


class _ChildSerializer(_DescriptorSerializer):
    platform = _PlatformSerializer(allow_null=True)


class _ReferrerSerializer(_DescriptorSerializer):
    artifact_type = serializers.CharField()


def _manifest_digest(digest: str, name: str) -> str:
    if not is_digest(digest):
        raise NotFound(f"No manifest {digest!r} in {name!r}: name it by digest (tags are under /-/tags/).")
    return digest


class ManifestGetApi(ApiView):
    """One manifest or artifact by digest, with what it references and what refers to it."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE | {ROBOT}}  # a robot reads its tenant's repositories and tags

    class OutputSerializer(serializers.Serializer):
        digest = serializers.CharField()
        media_type = serializers.CharField()
        artifact_type = serializers.CharField(
            help_text="`artifactType`, else the config's media type; empty for an index without one."
        )
        size = serializers.IntegerField(help_text="The manifest's size in bytes.")
        subject = serializers.CharField(allow_null=True, help_text="The digest this artifact refers to (`subject`).")
        annotations = serializers.DictField(child=serializers.CharField())
        pushed_at = serializers.DateTimeField()
        last_pulled_at = serializers.DateTimeField(allow_null=True)
        config = _ConfigSerializer(
            allow_null=True, help_text="Image manifests: the config and, read from it, its platform and labels."
        )
        layers = _DescriptorSerializer(many=True)
        manifests = _ChildSerializer(many=True, help_text="An index's children and their platforms.")
        referrers = _ReferrerSerializer(many=True, help_text="Manifests whose subject is this one (at most 1000).")
        tags = serializers.ListField(child=serializers.CharField(), help_text="Tags naming it, by name (at most 1000).")

    @extend_schema(
        operation_id="repositories_manifests_get",
        tags=["repositories"],
        summary="One manifest or artifact, by digest",
        parameters=[NAME, DIGEST],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str, name: str, digest: str) -> Response:
        repository = _repository(request, name)
        detail = manifest_detail(
            tenant=request.tenant,  # type: ignore[attr-defined]
            repository=repository,
            digest=_manifest_digest(digest, name),
        )
        if detail is None:
            raise NotFound(f"No manifest {digest!r} in {name!r}.")
        return Response(self.OutputSerializer(detail).data)


class ManifestDeleteApi(ApiView):
    """Delete a manifest and its tags as /v2/ DELETE by digest does (events, object deletion, audit). Admins and owners."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"DELETE": MANAGE_ROLES}

    @extend_schema(
        operation_id="repositories_manifests_delete",
        tags=["repositories"],
        summary="Delete a manifest and its tags (409 while an index or an immutable tag holds it)",
        parameters=[NAME, DIGEST],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, slug: str, name: str, digest: str) -> Response:
        repository = _repository(request, name)
        try:
            manifest_delete(
                tenant=request.tenant,  # type: ignore[attr-defined]
                repository=repository,
                reference=_manifest_digest(digest, name),
                actor=self.actor(),
                ip=request.META.get("REMOTE_ADDR"),
            )
        except ManifestUnknown:
            raise NotFound(f"No manifest {digest!r} in {name!r}.") from None
        except Denied as exc:
            raise Conflict(exc.message) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
