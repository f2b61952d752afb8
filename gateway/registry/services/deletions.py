"""Bucket objects of deleted rows: recorded in the row-deleting transaction, deleted after one more check (decisions/0007).

GC, retention, the upload sweep and manifest deletion record here what a row's deletion
leaves in the bucket; the drain deletes those objects under the per-key locks a push takes
before writing them, keeping every key something uses again.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from accounts.models import Tenant
from gateway.registry import locks
from gateway.registry.models import Blob, Manifest, ObjectDeletion, Tag
from gateway.registry.stores import store_for


def object_deletions_record(*, tenant: Tenant, items: Sequence[tuple[str, str, str, str]]) -> list[int]:
    """Record objects to delete, as (kind, key, repository name, reference); call inside the row-deleting transaction. Returns the record ids."""
    if not items:
        return []
    created = ObjectDeletion.objects.bulk_create(
        [ObjectDeletion(tenant=tenant, kind=k, key=key, repository_name=repo, reference=ref) for k, key, repo, ref in items]
    )
    return [r.pk for r in created]


def _still_used(tenant: Tenant, rows: list[ObjectDeletion]) -> set[int]:
    """Ids of deletion records whose key is in use again (a push re-created what it stands for): keep those objects."""
    by_kind: dict[str, list[ObjectDeletion]] = {}
    for r in rows:
        by_kind.setdefault(r.kind, []).append(r)
    keep: set[int] = set()
    data = by_kind.get(ObjectDeletion.Kind.DATA, [])
    if data:
        used = set(Blob.objects.filter(storage_key__in=[r.key for r in data]).values_list("storage_key", flat=True))
        keep |= {r.pk for r in data if r.key in used}
    index = by_kind.get(ObjectDeletion.Kind.INDEX, [])
    if index:
        used = set(Blob.objects.filter(tenant=tenant, digest__in=[r.reference for r in index]).values_list("digest", flat=True))
        keep |= {r.pk for r in index if r.reference in used}
    keep |= _named_again(Manifest, "digest", tenant, by_kind.get(ObjectDeletion.Kind.MANIFEST, []))
    keep |= _named_again(Tag, "name", tenant, by_kind.get(ObjectDeletion.Kind.TAG, []))
    return keep


def _named_again(model: type[Manifest | Tag], field: str, tenant: Tenant, rows: list[ObjectDeletion]) -> set[int]:
    """Ids of records whose (repository, reference) names a row of `model` again, `field` being the reference."""
    if not rows:
        return set()
    used = set(
        model.objects.filter(
            tenant=tenant, repository__name__in={r.repository_name for r in rows}, **{f"{field}__in": {r.reference for r in rows}}
        ).values_list("repository__name", field)
    )
    return {r.pk for r in rows if (r.repository_name, r.reference) in used}


def object_deletions_drain(
    *, tenant: Tenant, batch_size: int, max_batches: int, ids: Sequence[int] | None = None
) -> tuple[int, int, bool]:
    """Delete recorded objects (only `ids`, if given) in batches under per-key locks, after one more check that nothing uses them: (deleted, kept, done).

    Idempotent: a record goes only in the transaction that follows its DeleteObjects, and
    deleting a missing key succeeds, so a killed drain repeats at most one batch.
    """
    store = store_for(tenant)
    deleted = kept = 0
    for _ in range(max_batches):
        with transaction.atomic():
            rows = locks.object_deletions_for_drain(tenant=tenant, limit=batch_size, ids=ids)
            if not rows:
                return deleted, kept, True
            # The same key locks a push takes before writing index/manifest/tag objects.
            locks.object_keys_lock(r.key for r in rows)
            in_use = _still_used(tenant, rows)
            doomed = sorted({r.key for r in rows if r.pk not in in_use})
            if doomed:
                store.delete(doomed)
            ObjectDeletion.objects.filter(pk__in=[r.pk for r in rows]).delete()
            deleted += len(doomed)
            kept += len(in_use)
    pending = ObjectDeletion.objects.filter(tenant=tenant)
    return deleted, kept, not (pending.filter(pk__in=list(ids)) if ids is not None else pending).exists()
