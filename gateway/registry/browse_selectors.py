"""Reads for browsing a tenant's repositories (the dashboard): sizes per repository, tag platforms, reclaimable bytes.

Every query filters by tenant first. Sizes follow usage_selectors (docs/decisions/0027):
`stored` = the repository's manifests + the blobs linked into it (a shared blob counts in each
repository linking it), `unique` = the blobs no other repository links. "Reclaimable" follows
GC's mark (services/gc_mark.py): a blob stays live while any manifest of the tenant still
references it, whatever repository links it.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import Tenant
from gateway.registry import selectors
from gateway.registry.manifest_selectors import config_document
from gateway.registry.media_types import INDEX_TYPES
from gateway.registry.models import Blob, Manifest, Repository, Tag

# Correlated per repository row (the outer query is tenant-scoped); each probes the FK indexes.
_MANIFEST_BYTES = "(SELECT coalesce(sum(m.size), 0) FROM registry_manifest m WHERE m.repository_id = registry_repository.id)"
_LINKED_BYTES = (
    "(SELECT coalesce(sum(b.size), 0) FROM registry_repositoryblob rb JOIN registry_blob b ON b.id = rb.blob_id"
    " WHERE rb.repository_id = registry_repository.id)"
)
_UNIQUE_BYTES = (
    "(SELECT coalesce(sum(b.size), 0) FROM registry_repositoryblob rb JOIN registry_blob b ON b.id = rb.blob_id"
    " WHERE rb.repository_id = registry_repository.id AND NOT EXISTS ("
    "SELECT 1 FROM registry_repositoryblob o WHERE o.blob_id = rb.blob_id AND o.repository_id <> rb.repository_id))"
)


def repository_list_sized(*, tenant: Tenant, patterns: tuple[str, ...] = ()) -> QuerySet[Repository]:
    """`selectors.repository_list` (tag_count, last_pushed_at) with `stored_bytes` and `unique_bytes` annotated too."""
    return selectors.repository_list(tenant=tenant, patterns=patterns).annotate(
        stored_bytes=RawSQL(f"{_MANIFEST_BYTES} + {_LINKED_BYTES}", [], output_field=BigIntegerField()),
        unique_bytes=RawSQL(_UNIQUE_BYTES, [], output_field=BigIntegerField()),
    )


def tag_latest_get(*, tenant: Tenant) -> Tag | None:
    """The tenant's most recently pushed tag with its repository, or None (a repository being deleted does not count)."""
    return (
        Tag.objects.filter(tenant=tenant, repository__deleted_name="")
        .select_related("repository")
        .order_by("-last_pushed_at", "-pk")
        .first()
    )


def _platform_text(platform: Any) -> str | None:
    if not isinstance(platform, dict):
        return None
    parts = [platform.get(k) for k in ("os", "architecture", "variant")]
    text = "/".join(p for p in parts if isinstance(p, str) and p)
    return text or None


def _config_platform(*, tenant: Tenant, blob: Blob) -> str | None:
    """os/architecture[/variant] of an image config blob, read from the store (None if unreadable or too big)."""
    doc = config_document(tenant=tenant, blob=blob)
    return _platform_text(doc) if doc is not None else None


def manifest_platforms(*, tenant: Tenant, manifest_ids: list[int]) -> dict[int, list[str]]:
    """Each manifest's platforms ("linux/amd64"): an index's from its entries, an image's from its config; 2 queries.

    Image configs are content-addressed, so their platform is cached forever per tenant and
    digest: a page reads the store only for configs it has never seen.
    """
    if not manifest_ids:
        return {}
    rows = Manifest.objects.filter(tenant=tenant, pk__in=manifest_ids).values_list("pk", "media_type", "payload")
    platforms: dict[int, list[str]] = {}
    configs: dict[int, str] = {}
    for pk, media_type, payload in rows:
        try:
            doc = json.loads(bytes(payload))
        except ValueError:
            doc = {}
        if media_type in INDEX_TYPES:
            found = [_platform_text(e.get("platform")) for e in doc.get("manifests") or [] if isinstance(e, dict)]
            platforms[pk] = sorted({p for p in found if p})
        elif isinstance(doc.get("config"), dict) and isinstance(doc["config"].get("digest"), str):
            configs[pk] = doc["config"]["digest"]
    keys = {digest: f"wharf:platform:{tenant.pk}:{digest}" for digest in set(configs.values())}
    known = cache.get_many(list(keys.values())) if keys else {}
    missing = [d for d, k in keys.items() if k not in known]
    if missing:
        read = {}
        for blob in Blob.objects.filter(tenant=tenant, digest__in=missing).only("digest", "size", "storage_key"):
            platform = _config_platform(tenant=tenant, blob=blob)
            if platform is not None:
                read[keys[blob.digest]] = platform
        cache.set_many(read, timeout=None)
        known |= read
    for pk, digest in configs.items():
        platforms[pk] = [known[keys[digest]]] if keys[digest] in known else []
    return platforms


# An image's size as a registry stores it: the manifest, its config and (compressed) layers; an index adds
# each child's. Blobs shared by two children of one index count once.
_IMAGE_BYTES_SQL = """
SELECT m.id, m.size
    + coalesce((SELECT sum(c.size) FROM registry_manifestchild mc JOIN registry_manifest c ON c.id = mc.child_id
                WHERE mc.parent_id = m.id), 0)
    + coalesce((SELECT sum(b.size) FROM registry_blob b WHERE b.tenant_id = %(tenant)s AND b.id IN (
          SELECT mb.blob_id FROM registry_manifestblob mb WHERE mb.manifest_id = m.id
          UNION
          SELECT mb.blob_id FROM registry_manifestchild mc JOIN registry_manifestblob mb ON mb.manifest_id = mc.child_id
          WHERE mc.parent_id = m.id)), 0)
FROM registry_manifest m WHERE m.tenant_id = %(tenant)s AND m.id = ANY(%(ids)s)
"""


def manifest_image_bytes(*, tenant: Tenant, manifest_ids: list[int]) -> dict[int, int]:
    """Each manifest's bytes with everything it references (config, layers; an index: its children and theirs); one query."""
    if not manifest_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_IMAGE_BYTES_SQL, {"tenant": tenant.pk, "ids": list(manifest_ids)})
        return {pk: int(size) for pk, size in cursor.fetchall()}


# A manifest's exclusive set: itself, plus (recursively) index children and referrers that nothing
# else keeps (untagged; a child with no other parent). Reclaimable = their bytes + the bytes of blobs
# only manifests of that set reference (GC's liveness, services/gc_mark.py, ignores repository links).
_RECLAIMABLE_SQL = """
WITH RECURSIVE doomed(id) AS (
    SELECT %(manifest)s::bigint
    UNION
    SELECT kept.id FROM doomed d CROSS JOIN LATERAL (
        SELECT c.id FROM registry_manifestchild mc
        JOIN registry_manifest c ON c.id = mc.child_id AND c.tenant_id = %(tenant)s
        WHERE mc.parent_id = d.id
          AND NOT EXISTS (SELECT 1 FROM registry_tag t WHERE t.manifest_id = c.id)
          AND (SELECT count(*) FROM registry_manifestchild o WHERE o.child_id = c.id) = 1
        UNION ALL
        SELECT r.id FROM registry_manifest s
        JOIN registry_manifest r ON r.tenant_id = %(tenant)s AND r.repository_id = s.repository_id AND r.subject_digest = s.digest
        WHERE s.id = d.id
          AND NOT EXISTS (SELECT 1 FROM registry_tag t WHERE t.manifest_id = r.id)
          AND NOT EXISTS (SELECT 1 FROM registry_manifestchild o WHERE o.child_id = r.id)
    ) kept
)
SELECT
    (SELECT coalesce(sum(m.size), 0) FROM registry_manifest m WHERE m.id IN (SELECT id FROM doomed)),
    (SELECT coalesce(sum(b.size), 0) FROM registry_blob b
     WHERE b.tenant_id = %(tenant)s
       AND b.id IN (SELECT mb.blob_id FROM registry_manifestblob mb WHERE mb.manifest_id IN (SELECT id FROM doomed))
       AND NOT EXISTS (
           SELECT 1 FROM registry_manifestblob mb JOIN registry_manifest m ON m.id = mb.manifest_id
           WHERE mb.blob_id = b.id AND m.tenant_id = %(tenant)s AND m.id NOT IN (SELECT id FROM doomed)))
"""


def manifest_reclaimable_bytes(*, tenant: Tenant, manifest: Manifest) -> int:
    """Bytes deleting this manifest frees once GC runs: it and what only it keeps (blobs, untagged children, referrers); one query."""
    with connection.cursor() as cursor:
        cursor.execute(_RECLAIMABLE_SQL, {"tenant": tenant.pk, "manifest": manifest.pk})
        manifests, blobs = cursor.fetchone()
    return int(manifests) + int(blobs)


def tag_reclaimable_bytes(*, tenant: Tenant, tag: Tag) -> int:
    """Bytes deleting this tag frees once GC runs: the manifest's reclaimable bytes if this tag alone keeps it, else 0."""
    others = Tag.objects.filter(tenant=tenant, manifest_id=tag.manifest_id).exclude(pk=tag.pk).exists()
    if others or tag.manifest.parent_refs.exists():
        return 0
    return manifest_reclaimable_bytes(tenant=tenant, manifest=tag.manifest)
