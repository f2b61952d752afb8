"""Tenant-scoped reads of the registry. Every query filters by tenant first."""

from __future__ import annotations

from django.db.models import CharField, F, Sum, Value
from django.db.models.functions import Concat

from accounts.models import Tenant
from gateway.registry.models import Blob, BlobUpload, Manifest, Repository, RepositoryBlob, Tag


def repository_get(*, tenant: Tenant, name: str) -> Repository | None:
    return Repository.objects.filter(tenant=tenant, name=name).first()


def catalog_list(*, tenant_ids: list[int], with_slug: bool, last: str | None, n: int | None) -> list[str]:
    """Repository names of these tenants in lexical order (`slug/name` when with_slug), n+1 at most."""
    qs = Repository.objects.filter(tenant_id__in=tenant_ids)
    full = Concat("tenant__slug", Value("/"), "name", output_field=CharField()) if with_slug else F("name")
    qs = qs.annotate(full=full).order_by("full").values_list("full", flat=True)
    if last:
        qs = qs.filter(full__gt=last)
    if n is not None:
        qs = qs[: n + 1]
    return list(qs)


def blob_get_linked(*, tenant: Tenant, repository: Repository, digest: str) -> Blob | None:
    """The blob with this digest, only if it is linked into this repository."""
    return (
        Blob.objects.filter(tenant=tenant, digest=digest, repository_links__repository=repository)
        .only("id", "digest", "size", "storage_key")
        .first()
    )


def blob_get(*, tenant: Tenant, digest: str) -> Blob | None:
    return Blob.objects.filter(tenant=tenant, digest=digest).first()


def blob_is_linked(*, tenant: Tenant, repository: Repository, digest: str) -> bool:
    return RepositoryBlob.objects.filter(tenant=tenant, repository=repository, blob__digest=digest).exists()


def manifest_get(*, tenant: Tenant, repository: Repository, reference: str) -> Manifest | None:
    """A manifest by digest, or by tag (one query either way)."""
    if ":" in reference:
        return Manifest.objects.filter(tenant=tenant, repository=repository, digest=reference).first()
    tag = Tag.objects.filter(tenant=tenant, repository=repository, name=reference).select_related("manifest").first()
    return tag.manifest if tag else None


def tag_list(*, tenant: Tenant, repository: Repository, last: str | None, n: int | None) -> list[str]:
    qs = Tag.objects.filter(tenant=tenant, repository=repository).order_by("name").values_list("name", flat=True)
    if last:
        qs = qs.filter(name__gt=last)
    if n is not None:
        qs = qs[: n + 1]
    return list(qs)


def referrers_list(*, tenant: Tenant, repository: Repository, digest: str, artifact_type: str | None) -> list[Manifest]:
    qs = Manifest.objects.filter(tenant=tenant, repository=repository, subject_digest=digest).order_by("created_at", "pk")
    if artifact_type:
        qs = qs.filter(artifact_type=artifact_type)
    return list(qs.only("digest", "media_type", "size", "artifact_type", "annotations"))


def upload_get(*, tenant: Tenant, repository: Repository, upload_id) -> BlobUpload | None:
    return BlobUpload.objects.filter(tenant=tenant, repository=repository, pk=upload_id, state=BlobUpload.State.ACTIVE).first()


def usage_bytes(*, tenant: Tenant) -> int:
    """Bytes stored for the tenant: its blobs (each stored once) and manifests."""
    blobs = Blob.objects.filter(tenant=tenant).aggregate(s=Sum("size"))["s"] or 0
    manifests = Manifest.objects.filter(tenant=tenant).aggregate(s=Sum("size"))["s"] or 0
    return int(blobs) + int(manifests)
