"""Tenant-scoped reads of the registry. Every query filters by tenant first."""

from __future__ import annotations

from django.db.models import CharField, F, Q, Sum, Value
from django.db.models.functions import Concat

from accounts.models import Tenant
from accounts.principals import pattern_literal_prefix, repository_matches
from gateway.registry.media_types import MAX_TYPE_LENGTH
from gateway.registry.models import Blob, BlobUpload, Manifest, Repository, Tag

# The two lookups every pull makes are written as raw SQL: the ORM's query compilation was a
# third of a manifest GET's time (bench/README.md). Same columns, same tenant scoping.
_REPOSITORY_SQL = (
    "SELECT id, created_at, updated_at, tenant_id, name, visibility FROM registry_repository"
    " WHERE tenant_id = %s AND name = %s LIMIT 1"
)
_MANIFEST_FIELDS = (
    "m.id, m.created_at, m.updated_at, m.tenant_id, m.repository_id, m.digest, m.media_type, m.size, m.payload,"
    " m.artifact_type, m.subject_digest, m.annotations, m.last_pulled_at, m.gc_candidate_since"
)
_MANIFEST_BY_TAG_SQL = (
    f"SELECT {_MANIFEST_FIELDS} FROM registry_tag t JOIN registry_manifest m ON m.id = t.manifest_id"
    " WHERE t.tenant_id = %s AND t.repository_id = %s AND t.name = %s LIMIT 1"
)
_MANIFEST_BY_DIGEST_SQL = f"SELECT {_MANIFEST_FIELDS} FROM registry_manifest m WHERE m.tenant_id = %s AND m.repository_id = %s AND m.digest = %s LIMIT 1"


CATALOG_BATCH = 500  # rows read per query while filling a catalog page


def repository_get(*, tenant: Tenant, name: str) -> Repository | None:
    """The tenant's repository with this name, or None."""
    found = list(Repository.objects.raw(_REPOSITORY_SQL, [tenant.pk, name]))
    return found[0] if found else None


def catalog_list(
    *, tenant_ids: list[int], with_slug: bool, last: str | None, n: int | None, patterns: tuple[str, ...] = ()
) -> list[str]:
    """Repository names of these tenants in lexical order (`slug/name` when with_slug), n+1 at most.

    With `patterns` (a token's or robot's fnmatch patterns, applied to the name within the
    tenant) only matching names are listed: the database narrows by each pattern's literal
    prefix, `repository_matches` decides, and pages are filled by reading on past non-matches.
    """
    qs = Repository.objects.filter(tenant_id__in=tenant_ids)
    full = Concat("tenant__slug", Value("/"), "name", output_field=CharField()) if with_slug else F("name")
    qs = qs.annotate(full=full).order_by("full")
    if patterns:
        prefixes = {pattern_literal_prefix(p) for p in patterns}
        if "" not in prefixes:
            narrow = Q()
            for prefix in prefixes:
                narrow |= Q(name__startswith=prefix)
            qs = qs.filter(narrow)
    want = None if n is None else n + 1
    batch = max(want or 0, CATALOG_BATCH)
    names: list[str] = []
    while want is None or len(names) < want:
        page = list((qs.filter(full__gt=last) if last else qs).values_list("full", "name")[:batch])
        names += [full_name for full_name, name in page if repository_matches(patterns, name)]
        if len(page) < batch:
            break
        last = page[-1][0]
    return names if want is None else names[:want]


def blob_get_linked(*, tenant: Tenant, repository: Repository, digest: str) -> Blob | None:
    """The blob with this digest, only if it is linked into this repository."""
    return (
        Blob.objects.filter(tenant=tenant, digest=digest, repository_links__repository=repository)
        .only("id", "digest", "size", "storage_key")
        .first()
    )


def blob_get(*, tenant: Tenant, digest: str) -> Blob | None:
    return Blob.objects.filter(tenant=tenant, digest=digest).first()


def manifest_get(*, tenant: Tenant, repository: Repository, reference: str) -> Manifest | None:
    """A manifest of this repository by digest, or by tag (one query either way)."""
    sql = _MANIFEST_BY_DIGEST_SQL if ":" in reference else _MANIFEST_BY_TAG_SQL
    found = list(Manifest.objects.raw(sql, [tenant.pk, repository.pk, reference]))
    return found[0] if found else None


def tag_list(*, tenant: Tenant, repository: Repository, last: str | None, n: int | None) -> list[str]:
    """Tag names after `last` in lexical order, n+1 at most (`last` must hold no NUL: PostgreSQL cannot compare with one)."""
    qs = Tag.objects.filter(tenant=tenant, repository=repository).order_by("name").values_list("name", flat=True)
    if last:
        qs = qs.filter(name__gt=last)
    if n is not None:
        qs = qs[: n + 1]
    return list(qs)


def referrers_list(*, tenant: Tenant, repository: Repository, digest: str, artifact_type: str | None) -> list[Manifest]:
    """Manifests whose subject is `digest`, oldest first, of one artifactType if given."""
    if artifact_type and ("\x00" in artifact_type or len(artifact_type) > MAX_TYPE_LENGTH):
        return []  # no manifest can have it (parse_manifest refuses them), and PostgreSQL cannot compare with a NUL
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
