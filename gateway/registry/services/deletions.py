"""Bucket objects of deleted rows: recorded in the row-deleting transaction, deleted after one more check (decisions/0007).

GC, retention, the upload sweep and manifest deletion record here what a row's deletion
leaves in the bucket; the drain deletes those objects under the per-key locks a push takes
before writing them, keeping every key something uses again. What it deletes, with the size
and stored-since the record carries, goes to the DeletedObject ledger in the same transaction
(Storj bills a deleted object for its stored time and the rest of its minimum duration;
docs/decisions/0052); GC prunes the ledger's old rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.registry import locks
from gateway.registry.models import Blob, DeletedObject, Manifest, ObjectDeletion, Tag
from gateway.registry.stores import store_for
from gateway.storage import keys

LEDGER_KEEP_MONTHS = 2  # full calendar months of DeletedObject rows kept before the current one


class DeletionItem(NamedTuple):
    """One bucket object a row's deletion leaves: what the drain deletes and checks, and what Storj bills it for."""

    kind: str  # ObjectDeletion.Kind
    key: str
    repository_name: str = ""  # what the key stands for, for the drain's re-check
    reference: str = ""
    size: int | None = None  # None (with stored_since): not known, not ledgered
    stored_since: datetime | None = None

    @classmethod
    def tag(cls, *, tenant_id: int, repository: str, name: str, digest: str, pushed_at: datetime) -> DeletionItem:
        """A tag's {tag, digest} object, as last written when the tag was pushed."""
        key = keys.tag_key(tenant_id, repository, name)
        return cls(ObjectDeletion.Kind.TAG, key, repository, name, keys.tag_object_size(name, digest), pushed_at)

    @classmethod
    def manifest(cls, *, tenant_id: int, repository: str, digest: str, size: int, created_at: datetime) -> DeletionItem:
        """A manifest's exact bytes in one repository."""
        key = keys.manifest_key(tenant_id, repository, digest)
        return cls(ObjectDeletion.Kind.MANIFEST, key, repository, digest, size, created_at)


def object_deletions_record(*, tenant: Tenant, items: Sequence[DeletionItem]) -> list[int]:
    """Record objects to delete; call inside the row-deleting transaction. Returns the record ids."""
    if not items:
        return []
    created = ObjectDeletion.objects.bulk_create(
        [
            ObjectDeletion(
                tenant=tenant,
                kind=i.kind,
                key=i.key,
                repository_name=i.repository_name,
                reference=i.reference,
                size=i.size,
                stored_since=i.stored_since,
            )
            for i in items
        ]
    )
    return [r.pk for r in created]


def _ledger_write(tenant: Tenant, rows: list[ObjectDeletion], deleted_at: datetime) -> None:
    """One INSERT for the objects a drain batch deleted whose size and age are known; a version already ledgered is skipped."""
    DeletedObject.objects.bulk_create(
        [
            DeletedObject(tenant=tenant, kind=r.kind, key=r.key, size=r.size, stored_since=r.stored_since, deleted_at=deleted_at)
            for r in rows
            if r.size is not None and r.stored_since is not None
        ],
        ignore_conflicts=True,  # the same object recorded twice (two sweeps listed one tail): billed once
    )


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

    Idempotent: a record goes only in the transaction that follows its DeleteObjects, together
    with the ledger row of what was deleted, and deleting a missing key succeeds, so a killed
    drain repeats at most one batch and ledgers each object once. A kept record (its key in use
    again) is not ledgered: the object lives on.
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
                _ledger_write(tenant, [r for r in rows if r.pk not in in_use], timezone.now())
            ObjectDeletion.objects.filter(pk__in=[r.pk for r in rows]).delete()
            deleted += len(doomed)
            kept += len(in_use)
    pending = ObjectDeletion.objects.filter(tenant=tenant)
    return deleted, kept, not (pending.filter(pk__in=list(ids)) if ids is not None else pending).exists()


def ledger_cutoff(now: datetime) -> datetime:
    """The first UTC hour of the calendar month LEDGER_KEEP_MONTHS before `now`'s: ledger rows deleted before it no longer matter."""
    moment = now.astimezone(UTC)
    months = moment.year * 12 + moment.month - 1 - LEDGER_KEEP_MONTHS
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


def deleted_objects_prune(*, tenant: Tenant, now: datetime | None = None) -> int:
    """Delete the tenant's ledger rows of objects deleted before `ledger_cutoff` (one statement); how many went."""
    deleted, _ = DeletedObject.objects.filter(tenant=tenant, deleted_at__lt=ledger_cutoff(now or timezone.now())).delete()
    return deleted
