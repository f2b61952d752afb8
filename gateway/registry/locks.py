"""Lock querysets of the registry (house style rule 5): every row lock taken anywhere is taken here.

Lock order, which every transaction follows (docs/decisions/0007-online-gc-cannot-lose-data.md):

1. object-key advisory locks (`object_keys_lock`), sorted;
2. the tenant's quota row (`tenant_quota_for_update`, FOR NO KEY UPDATE), only where a new blob is stored;
3. Blob rows, ascending pk;
4. Manifest rows, ascending pk;
5. the Tag row;
6. the BlobUpload row, last (a conditional UPDATE).

Two locks stand outside that order because they never wait while holding another
(docs/decisions/0012-upload-hardening.md): an upload session's lease (`upload_lease`, a
session-level *try* lock held by the request's connection for the whole request, outside any
transaction; a second request gets 416, a killed worker's lease dies with its connection), and
the tenant's session-count lock (`upload_sessions_lock`), the only lock of the tiny transaction
that opens a session.

A push *references* a row with FOR KEY SHARE, the lock PostgreSQL's own foreign-key check
takes (and takes only at COMMIT here, since Django's constraints are DEFERRABLE INITIALLY
DEFERRED): concurrent pushes of the same base layer never wait for each other, but a GC that
holds the row FOR UPDATE (to delete it) conflicts with them. GC locks with SKIP LOCKED and so
never waits for a push; a push waits for GC at most for one delete batch, after which the row
is either still there (GC saw the reference and kept it) or gone (the push reports the blob or
manifest unknown, or stores its own copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from django.db import connection

from accounts.models import Tenant
from gateway.core.locks import advisory_lock, advisory_xact_locks
from gateway.registry.models import Blob, BlobUpload, ImmutableTagRule, Manifest, ObjectDeletion, Repository, RetentionPolicy, Tag

_BLOB_COLUMNS = "b.id, b.tenant_id, b.digest, b.size, b.storage_key, b.gc_candidate_since, b.created_at, b.updated_at"


def object_keys_lock(keys: Iterable[str]) -> int:
    """Per-key lock on bucket objects that several writers share (index, manifest and tag objects); in a transaction."""
    return advisory_xact_locks(f"s3key:{k}" for k in keys)


def upload_lease_name(upload_id: object) -> str:
    """The advisory lock name of an upload session's lease (core.locks.lock_id gives its pg_locks key)."""
    return f"upload:{upload_id}"


@contextmanager
def upload_lease(upload_id: object) -> Iterator[bool]:
    """Hold the upload session's lease for a block: True if taken, False if another live request holds it (never waits)."""
    with advisory_lock(upload_lease_name(upload_id)) as taken:
        yield taken


def upload_sessions_lock(*, tenant: Tenant) -> int:
    """Serialise opening upload sessions of one tenant (count, then insert) for the transaction."""
    return advisory_xact_locks([f"upload-sessions:{tenant.pk}"])


def tenant_quota_for_update(*, tenant: Tenant) -> int | None:
    """The tenant's storage quota, its row locked FOR NO KEY UPDATE: stores of new blobs of a tenant commit one at a time."""
    return (
        Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).values_list("storage_quota_bytes", flat=True).first()
    )


# -- referencing (pushes): FOR KEY SHARE ------------------------------------------------------------


def blobs_share_linked(*, tenant: Tenant, repository: Repository, digests: Sequence[str]) -> dict[str, Blob]:
    """The tenant's blobs with these digests that are linked into `repository`, locked FOR KEY SHARE (pk order)."""
    if not digests:
        return {}
    sql = (
        f"SELECT {_BLOB_COLUMNS} FROM registry_blob b WHERE b.tenant_id = %s AND b.digest = ANY(%s) "
        "AND EXISTS (SELECT 1 FROM registry_repositoryblob rb WHERE rb.blob_id = b.id AND rb.repository_id = %s) "
        "ORDER BY b.id FOR KEY SHARE OF b"
    )
    return {b.digest: b for b in Blob.objects.raw(sql, [tenant.pk, list(digests), repository.pk])}


def blob_share(*, tenant: Tenant, digest: str) -> Blob | None:
    """The tenant's blob with this digest locked FOR KEY SHARE, or None (never stored, or GC deleted it)."""
    sql = f"SELECT {_BLOB_COLUMNS} FROM registry_blob b WHERE b.tenant_id = %s AND b.digest = %s FOR KEY SHARE OF b"
    found = list(Blob.objects.raw(sql, [tenant.pk, digest]))
    return found[0] if found else None


def manifests_share(*, tenant: Tenant, repository: Repository, digests: Sequence[str]) -> dict[str, Manifest]:
    """The repository's manifests with these digests (an index's children), locked FOR KEY SHARE (pk order)."""
    if not digests:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM registry_manifest WHERE tenant_id = %s AND repository_id = %s AND digest = ANY(%s) "
            "ORDER BY id FOR KEY SHARE",
            [tenant.pk, repository.pk, list(digests)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    # Fetch without the payload (up to 4 MiB each): only the digest is needed.
    return {
        m.digest: m
        for m in Manifest.objects.filter(pk__in=ids).only("id", "digest", "repository_id", "tenant_id", "gc_candidate_since")
    }


def manifest_for_update(*, tenant: Tenant, repository: Repository, digest: str) -> Manifest | None:
    """The repository's manifest with this digest, FOR NO KEY UPDATE (re-push, tag move), or None."""
    return Manifest.objects.select_for_update(no_key=True).filter(tenant=tenant, repository=repository, digest=digest).first()


def tag_for_update(*, tenant: Tenant, repository: Repository, name: str) -> Tag | None:
    """The repository's tag `name`, FOR NO KEY UPDATE, or None."""
    return Tag.objects.select_for_update(no_key=True).filter(tenant=tenant, repository=repository, name=name).first()


def gc_marked_for_unmark(*, model: type[Blob | Manifest], ids: Sequence[int]) -> list[int]:
    """Of these rows, the GC-marked ones we could lock FOR NO KEY UPDATE SKIP LOCKED (pk order) to clear their mark.

    Skipping rows someone else holds means an unmark never waits and never deadlocks; a mark
    left in place is harmless, because GC re-checks references under its own lock before deleting.
    """
    if not ids:
        return []
    return list(
        model.objects.select_for_update(no_key=True, skip_locked=True)
        .filter(pk__in=list(ids), gc_candidate_since__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# -- deleting (GC, retention, sweeps): FOR UPDATE SKIP LOCKED -----------------------------------------


def blobs_for_delete(*, tenant: Tenant, ids: Sequence[int]) -> list[Blob]:
    """Blobs to delete, FOR UPDATE SKIP LOCKED in pk order: a row a push holds is skipped, never waited for."""
    return list(Blob.objects.select_for_update(skip_locked=True).filter(tenant=tenant, pk__in=list(ids)).order_by("pk"))


def manifests_for_delete(*, tenant: Tenant, ids: Sequence[int]) -> list[Manifest]:
    """Manifests to delete (without payloads), FOR UPDATE SKIP LOCKED in pk order."""
    return list(
        Manifest.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(tenant=tenant, pk__in=list(ids))
        .select_related("repository")
        .only(
            "id",
            "digest",
            "size",
            "created_at",
            "subject_digest",
            "gc_candidate_since",
            "tenant_id",
            "repository_id",
            "repository__name",
        )
        .order_by("pk")
    )


def tags_for_delete(*, tenant: Tenant, ids: Sequence[int]) -> list[Tag]:
    """Tags to delete, FOR UPDATE SKIP LOCKED in pk order."""
    return list(
        Tag.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(tenant=tenant, pk__in=list(ids))
        .select_related("repository", "manifest")
        .order_by("pk")
    )


def object_deletions_for_drain(*, tenant: Tenant, limit: int, ids: Sequence[int] | None = None) -> list[ObjectDeletion]:
    """The oldest pending object deletions of a tenant (only `ids`, if given), FOR UPDATE SKIP LOCKED (two drains share the work)."""
    qs = ObjectDeletion.objects.select_for_update(skip_locked=True).filter(tenant=tenant)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return list(qs.order_by("pk")[:limit])


def upload_sessions_for_sweep(*, tenant: Tenant, ids: Sequence[object]) -> list[BlobUpload]:
    """Upload sessions to sweep, FOR UPDATE SKIP LOCKED in pk order (a request finishing one is skipped)."""
    return list(BlobUpload.objects.select_for_update(skip_locked=True).filter(tenant=tenant, pk__in=list(ids)).order_by("pk"))


def immutable_rule_for_update(*, tenant: Tenant, rule_id: int) -> ImmutableTagRule | None:
    """The tenant's immutable-tag rule, FOR NO KEY UPDATE (an If-Match check and the change it guards), or None."""
    return ImmutableTagRule.objects.select_for_update(no_key=True).filter(tenant=tenant, pk=rule_id).first()


def retention_policy_for_update(*, tenant: Tenant, policy_id: int) -> RetentionPolicy | None:
    """The tenant's retention policy, FOR NO KEY UPDATE (an If-Match check and the change it guards), or None."""
    return (
        RetentionPolicy.objects.select_for_update(no_key=True, of=("self",))
        .select_related("repository")
        .filter(tenant=tenant, pk=policy_id)
        .first()
    )
