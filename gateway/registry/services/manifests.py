"""Manifests and tags: put (validate, link, store exact bytes), delete, tag removal.

The bucket holds only what the database commits (docs/decisions/0011): a push writes its
manifest and tag objects after its rows, as the last step of the transaction and under the
objects' key locks; a push that fails after writing puts the bucket back to what the
committed rows say. Deletes record their objects for the checked drain (as GC does), so a
delete racing a re-push never removes the object of a row that exists.
"""

from __future__ import annotations

import json
import logging

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import audit_record
from gateway.registry import locks
from gateway.registry.access import suspension_check
from gateway.registry.digests import CANONICAL, digest_algorithm, digest_of, is_digest, parse_digest
from gateway.registry.errors import (
    Denied,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestChildUnknown,
    ManifestInvalid,
    ManifestUnknown,
)
from gateway.registry.media_types import ParsedManifest, manifest_size_check, parse_manifest
from gateway.registry.models import Blob, Manifest, ManifestBlob, ManifestChild, Repository, Tag
from gateway.registry.names import validate_tag
from gateway.registry.services import events, upload_limits
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.immutability import immutable_rules_load
from gateway.registry.stores import store_for
from gateway.storage import StorageError, keys

log = logging.getLogger(__name__)


def manifest_reference_check(*, reference: str) -> str:
    """The digest algorithm of a manifest named `reference` (its own; sha256 for a tag); DIGEST_INVALID/MANIFEST_INVALID if bad."""
    if is_digest(reference):
        return digest_algorithm(parse_digest(reference))
    validate_tag(reference)
    return CANONICAL


def manifest_put(
    *,
    tenant: Tenant,
    repository: Repository,
    reference: str,
    payload: bytes,
    content_type: str,
    actor: str = "",
    ip: str | None = None,
) -> Manifest:
    """Store a manifest under a tag or its digest. Everything it references must be in the repository.

    GC-safe: referenced blobs and child manifests are locked FOR KEY SHARE and validated inside
    the transaction that inserts the references (GC deletes under FOR UPDATE, so it either sees
    them or they are gone and this push fails cleanly). An immutable tag is never moved (DENIED).
    Nothing is written to the bucket for a push that fails.
    """
    manifest_size_check(len(payload))
    digest = digest_of(payload, manifest_reference_check(reference=reference))
    tag = None if is_digest(reference) else reference
    if tag is None and reference != digest:
        raise DigestInvalid(f"manifest digest is {digest}, not {reference}", detail={"expected": reference, "actual": digest})
    parsed = parse_manifest(payload, content_type)

    manifest_key = keys.manifest_key(tenant.pk, repository.name, digest)
    tag_key = None if tag is None else keys.tag_key(tenant.pk, repository.name, tag)
    wrote = False
    try:
        with transaction.atomic():
            # Lock order (registry/locks.py): object keys, blobs, manifests, tag.
            locks.object_keys_lock([manifest_key] + ([tag_key] if tag_key else []))
            manifest, moved = _rows_write(
                tenant=tenant, repository=repository, digest=digest, payload=payload, parsed=parsed, tag=tag
            )
            audit_record(
                action="manifest.push",
                actor=actor,
                tenant=tenant,
                target=f"{repository.name}@{digest}",
                ip=ip,
                detail={"reference": reference, "media_type": parsed.media_type},
            )
            # Last, still under the key locks: the bucket's copy of what this transaction commits.
            wrote = True
            store = store_for(tenant)
            store.put(manifest_key, payload, content_type=parsed.media_type, if_absent=True)  # an existing object is left alone
            if tag_key is not None:
                store.put_json(tag_key, {"tag": reference, "digest": digest})
    except BaseException:
        if wrote:
            _objects_reconcile(tenant=tenant, repository=repository, digest=digest, tag=tag)
        raise
    _push_events(tenant=tenant, repository=repository, digest=digest, size=len(payload), reference=reference, moved=moved)
    return manifest


def _push_events(*, tenant: Tenant, repository: Repository, digest: str, size: int, reference: str, moved: bool) -> None:
    """Record a committed push: the manifest, and the tag when the push moved one."""
    events.record(
        tenant=tenant,
        repository=repository.name,
        digest=digest,
        size=size,
        kind="manifest",
        direction="push",
        reference=reference,
    )
    if moved:
        events.record(
            tenant=tenant, repository=repository.name, digest=digest, size=0, kind="tag", direction="push", reference=reference
        )


def _rows_write(
    *, tenant: Tenant, repository: Repository, digest: str, payload: bytes, parsed: ParsedManifest, tag: str | None
) -> tuple[Manifest, bool]:
    """The rows of a push, in the caller's transaction (after the key locks): manifest, its references, the tag.

    Returns the manifest and whether this push moved an existing tag to it."""
    if not Manifest.objects.filter(tenant=tenant, repository=repository, digest=digest).exists():
        # A new manifest's bytes count towards the storage quota (the quota row is next in the lock order).
        upload_limits.quota_new_bytes_check(tenant=tenant, size=len(payload), what=f"this manifest needs {len(payload)} bytes")
    blobs, children = _references_lock(tenant=tenant, repository=repository, parsed=parsed)
    manifest = locks.manifest_for_update(tenant=tenant, repository=repository, digest=digest)
    current = locks.tag_for_update(tenant=tenant, repository=repository, name=tag) if tag is not None else None
    _refuse_immutable_move(repository=repository, tag=current, manifest=manifest, digest=digest)
    if manifest is None:
        manifest = _manifest_insert(
            tenant=tenant, repository=repository, digest=digest, payload=payload, parsed=parsed, blobs=blobs, children=children
        )
    # Pushed or referenced again: GC's grace period starts over for the manifest, its blobs and children.
    _gc_unmark(Manifest, [m.pk for m in [manifest, *children.values()] if m.gc_candidate_since is not None])
    _gc_unmark(Blob, [b.pk for b in blobs.values() if b.gc_candidate_since is not None])
    moved = current is not None and current.manifest_id != manifest.pk
    if tag is not None:
        Tag.objects.update_or_create(
            tenant=tenant, repository=repository, name=tag, defaults={"manifest": manifest, "last_pushed_at": timezone.now()}
        )
    try:
        # Check the deferred foreign keys now, not at COMMIT, which comes after the bucket writes.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except IntegrityError:
        raise ManifestBlobUnknown("a blob or manifest this manifest references was deleted meanwhile; push it again") from None
    return manifest, moved


def _references_lock(
    *, tenant: Tenant, repository: Repository, parsed: ParsedManifest
) -> tuple[dict[str, Blob], dict[str, Manifest]]:
    """Lock the manifest's blobs and child manifests FOR KEY SHARE; MANIFEST_BLOB_UNKNOWN/MANIFEST_UNKNOWN if one is not in the repository."""
    blobs = locks.blobs_share_linked(tenant=tenant, repository=repository, digests=sorted({d.digest for d in parsed.blobs}))
    for d in parsed.blobs:
        blob = blobs.get(d.digest)
        if blob is None and not d.foreign:
            raise ManifestBlobUnknown(f"blob {d.digest} is not in repository {repository.name}", detail={"digest": d.digest})
        if blob is not None and blob.size != d.size:
            raise ManifestBlobUnknown(
                f"blob {d.digest} is {blob.size} bytes, the manifest says {d.size}", detail={"digest": d.digest}
            )
    children = locks.manifests_share(tenant=tenant, repository=repository, digests=sorted({c.digest for c in parsed.children}))
    for c in parsed.children:
        if c.digest not in children:
            raise ManifestChildUnknown(f"manifest {c.digest} is not in repository {repository.name}", detail={"digest": c.digest})
    return blobs, children


def _manifest_insert(
    *,
    tenant: Tenant,
    repository: Repository,
    digest: str,
    payload: bytes,
    parsed: ParsedManifest,
    blobs: dict[str, Blob],
    children: dict[str, Manifest],
) -> Manifest:
    """Insert the manifest row and its blob/child links; the concurrent push's row if that one committed first."""
    try:
        with transaction.atomic():
            manifest = manifest_rows_create(
                tenant=tenant,
                repository=repository,
                digest=digest,
                payload=payload,
                parsed=parsed,
                blobs=blobs,
                children=children,
            )
    except IntegrityError:
        # A concurrent push of the same manifest committed first.
        existing = locks.manifest_for_update(tenant=tenant, repository=repository, digest=digest)
        if existing is None:
            raise
        return existing
    except DataError:
        # parse_manifest refuses what PostgreSQL cannot store; this is the net under it.
        raise ManifestInvalid("manifest holds a value the registry cannot store") from None
    return manifest


def manifest_rows_create(
    *,
    tenant: Tenant,
    repository: Repository,
    digest: str,
    payload: bytes,
    parsed: ParsedManifest,
    blobs: dict[str, Blob],
    children: dict[str, Manifest],
) -> Manifest:
    """The Manifest row of these exact bytes and its blob and child links (callers hold the locks and the transaction)."""
    manifest = Manifest.objects.create(
        tenant=tenant,
        repository=repository,
        digest=digest,
        media_type=parsed.media_type,
        size=len(payload),
        payload=payload,
        artifact_type=parsed.artifact_type,
        subject_digest=parsed.subject.digest if parsed.subject else "",
        annotations=parsed.annotations,
    )
    ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in blobs.values()], ignore_conflicts=True)
    ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=m) for m in children.values()], ignore_conflicts=True)
    return manifest


def _objects_reconcile(*, tenant: Tenant, repository: Repository, digest: str, tag: str | None) -> None:
    """After a failed push: make its manifest and tag objects say what the committed rows say (under the key locks).

    Best effort: with storage or the database down this fails too (logged); what is left is an
    object without a row, which registry_rebuild validates like any other.
    """
    manifest_key = keys.manifest_key(tenant.pk, repository.name, digest)
    tag_key = keys.tag_key(tenant.pk, repository.name, tag) if tag is not None else None
    try:
        with transaction.atomic():
            locks.object_keys_lock([manifest_key] + ([tag_key] if tag_key else []))
            store = store_for(tenant)
            doomed = (
                [] if Manifest.objects.filter(tenant=tenant, repository=repository, digest=digest).exists() else [manifest_key]
            )
            if tag_key is not None:
                current = (
                    Tag.objects.filter(tenant=tenant, repository=repository, name=tag)
                    .values_list("manifest__digest", flat=True)
                    .first()
                )
                if current is None:
                    doomed.append(tag_key)
                else:
                    store.put_json(tag_key, {"tag": tag, "digest": current})
            if doomed:
                store.delete(doomed)
    except Exception:  # noqa: BLE001 - the push's own error is what the client must see
        log.exception("could not put back the bucket objects of a failed push of %s@%s", repository.name, digest)


def _refuse_immutable_move(*, repository: Repository, tag: Tag | None, manifest: Manifest | None, digest: str) -> None:
    """DENIED when `tag` is immutable (flag or rule) and this push would point it at another manifest (re-pushing its own is fine)."""
    if tag is None or (manifest is not None and tag.manifest_id == manifest.pk):
        return
    why = immutable_rules_load(tenant=tag.tenant_id).reason(repository=repository.name, tag=tag.name, immutable=tag.immutable)
    if why is None:
        return
    current = Manifest.objects.filter(pk=tag.manifest_id).values_list("digest", flat=True).first() or "another manifest"
    raise Denied(
        f"tag {tag.name!r} is {why}: it points at {current} and cannot be moved to {digest}; push under a new tag",
        detail={"tag": tag.name, "digest": current, "refused": digest},
    )


def _gc_unmark(model: type[Blob | Manifest], ids: list[int]) -> None:
    """Clear GC marks of rows in use again (skipping rows others hold: never waits, never deadlocks)."""
    if ids:
        model.objects.filter(pk__in=locks.gc_marked_for_unmark(model=model, ids=ids)).update(gc_candidate_since=None)


def manifest_delete(*, tenant: Tenant, repository: Repository, reference: str, actor: str = "", ip: str | None = None) -> None:
    """DELETE by digest removes the manifest and its tags; by tag removes only the tag.

    The rows go in one transaction that records their bucket objects for the drain, which then
    deletes each object under its key lock only if no row uses it again (a re-push meanwhile).
    A suspended tenant's deletes are refused here too, whichever face asks (docs/decisions/0023).
    """
    suspension_check(tenant=tenant, action="delete")
    if is_digest(reference):
        _delete_by_digest(tenant=tenant, repository=repository, digest=reference, actor=actor, ip=ip)
    else:
        _delete_by_tag(tenant=tenant, repository=repository, name=reference, actor=actor, ip=ip)


def _delete_by_tag(*, tenant: Tenant, repository: Repository, name: str, actor: str, ip: str | None) -> None:
    """DELETE by tag: remove only the tag (DENIED if immutable), then drain its object."""
    with transaction.atomic():
        tag = Tag.objects.select_for_update().filter(tenant=tenant, repository=repository, name=name).first()
        if tag is None:
            raise ManifestUnknown(detail={"tag": name})
        why = immutable_rules_load(tenant=tenant).reason(repository=repository.name, tag=name, immutable=tag.immutable)
        if why is not None:
            raise Denied(f"tag {name!r} is {why} and cannot be deleted", detail={"tag": name})
        tagged = Manifest.objects.filter(pk=tag.manifest_id).values_list("digest", flat=True).first() or ""
        tag.delete()
        ids = object_deletions_record(
            tenant=tenant,
            items=[
                DeletionItem.tag(
                    tenant_id=tenant.pk, repository=repository.name, name=name, digest=tagged, pushed_at=tag.last_pushed_at
                )
            ],
        )
        audit_record(action="tag.delete", actor=actor, tenant=tenant, target=f"{repository.name}:{name}", ip=ip)
    _drain_now(tenant=tenant, ids=ids)
    events.record(
        tenant=tenant, repository=repository.name, digest=tagged, size=0, kind="tag", direction="delete", reference=name
    )


def _delete_by_digest(*, tenant: Tenant, repository: Repository, digest: str, actor: str, ip: str | None) -> None:
    """DELETE by digest: remove the manifest and its tags (DENIED if an index or an immutable tag holds it), then drain their objects."""
    with transaction.atomic():
        manifest = Manifest.objects.select_for_update().filter(tenant=tenant, repository=repository, digest=digest).first()
        if manifest is None:
            raise ManifestUnknown(detail={"digest": digest})
        parent = ManifestChild.objects.filter(child=manifest).values_list("parent__digest", flat=True).first()
        if parent:
            raise Denied(f"manifest is referenced by index {parent}; delete the index first", detail={"parent": parent})
        tagged = list(
            Tag.objects.filter(repository=repository, manifest=manifest).values_list("name", "immutable", "last_pushed_at")
        )
        rules = immutable_rules_load(tenant=tenant)
        for name, immutable, _ in tagged:
            if (why := rules.reason(repository=repository.name, tag=name, immutable=immutable)) is not None:
                raise Denied(f"manifest is tagged with {name!r}, which is {why}; it cannot be deleted", detail={"tag": name})
        tag_names = [name for name, _, _ in tagged]
        Tag.objects.filter(repository=repository, manifest=manifest).delete()
        manifest.delete()
        ids = object_deletions_record(
            tenant=tenant,
            items=[
                DeletionItem.manifest(
                    tenant_id=tenant.pk,
                    repository=repository.name,
                    digest=digest,
                    size=manifest.size,
                    created_at=manifest.created_at,
                ),
                *(
                    DeletionItem.tag(tenant_id=tenant.pk, repository=repository.name, name=t, digest=digest, pushed_at=pushed)
                    for t, _, pushed in tagged
                ),
            ],
        )
        audit_record(
            action="manifest.delete",
            actor=actor,
            tenant=tenant,
            target=f"{repository.name}@{digest}",
            ip=ip,
            detail={"tags": tag_names},
        )
    _drain_now(tenant=tenant, ids=ids)
    for name in tag_names:
        events.record(
            tenant=tenant, repository=repository.name, digest=digest, size=0, kind="tag", direction="delete", reference=name
        )
    events.record(
        tenant=tenant,
        repository=repository.name,
        digest=digest,
        size=manifest.size,
        kind="manifest",
        direction="delete",
        reference=digest,
    )


def _drain_now(*, tenant: Tenant, ids: list[int]) -> None:
    """Delete a DELETE's recorded objects right away; if storage fails, GC's drain finishes the job later."""
    try:
        object_deletions_drain(tenant=tenant, batch_size=max(len(ids), 1), max_batches=1, ids=ids)
    except StorageError as exc:
        log.warning("objects of a delete left for the GC drain: %s", exc)


def referrers_index(manifests: list[Manifest]) -> bytes:
    """The OCI image index the referrers API answers with."""
    out = []
    for m in manifests:
        d = {"mediaType": m.media_type, "digest": m.digest, "size": m.size}
        if m.artifact_type:
            d["artifactType"] = m.artifact_type
        if m.annotations:
            d["annotations"] = m.annotations
        out.append(d)
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": out}).encode()
