"""Manifests and tags: put (validate, store exact bytes, link), delete, tag removal."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import audit_record
from gateway.registry import locks
from gateway.registry.errors import Denied, DigestInvalid, ManifestBlobUnknown, ManifestUnknown
from gateway.registry.media_types import parse_manifest
from gateway.registry.models import Blob, Manifest, ManifestBlob, ManifestChild, Repository, Tag
from gateway.registry.names import validate_tag
from gateway.registry.services import events
from gateway.replication.services import replication_enqueue
from gateway.storage import get_blob_store, keys


def manifest_put(
    *, tenant: Tenant, repository: Repository, reference: str, payload: bytes, content_type: str, actor: str = "", ip: str | None = None
) -> Manifest:
    """Store a manifest under a tag or its digest. Everything it references must be in the repository.

    GC-safe: referenced blobs and child manifests are locked FOR KEY SHARE and validated inside the
    transaction that inserts the references (GC deletes under FOR UPDATE, so it either sees them or
    they are gone and this push fails cleanly). An immutable tag is never moved (DENIED).
    """
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    is_digest = ":" in reference
    if is_digest and reference != digest:
        raise DigestInvalid(f"manifest digest is {digest}, not {reference}", detail={"expected": reference, "actual": digest})
    if not is_digest:
        validate_tag(reference)
    parsed = parse_manifest(payload, content_type)

    store = get_blob_store()
    manifest_key = keys.manifest_key(tenant.pk, repository.name, digest)
    tag_key = None if is_digest else keys.tag_key(tenant.pk, repository.name, reference)
    now = timezone.now()
    with transaction.atomic():
        # Lock order (registry/locks.py): object keys, blobs, manifests, tag.
        locks.object_keys_lock([manifest_key] + ([tag_key] if tag_key else []))
        blobs = locks.blobs_share_linked(tenant=tenant, repository=repository, digests=sorted({d.digest for d in parsed.blobs}))
        for d in parsed.blobs:
            blob = blobs.get(d.digest)
            if blob is None and not d.foreign:
                raise ManifestBlobUnknown(f"blob {d.digest} is not in repository {repository.name}", detail={"digest": d.digest})
            if blob is not None and blob.size != d.size:
                raise ManifestBlobUnknown(f"blob {d.digest} is {blob.size} bytes, the manifest says {d.size}", detail={"digest": d.digest})
        children = locks.manifests_share(tenant=tenant, repository=repository, digests=sorted({c.digest for c in parsed.children}))
        for c in parsed.children:
            if c.digest not in children:
                raise ManifestBlobUnknown(f"manifest {c.digest} is not in repository {repository.name}", detail={"digest": c.digest})
        manifest = locks.manifest_for_update(tenant=tenant, repository=repository, digest=digest)
        if tag_key is not None:
            _refuse_immutable_move(
                tag=locks.tag_for_update(tenant=tenant, repository=repository, name=reference), manifest=manifest, digest=digest
            )

        # Exact bytes in the bucket first (idempotent: an existing object is left alone).
        store.put(manifest_key, payload, content_type=parsed.media_type, if_absent=True)
        if tag_key is not None:
            store.put_json(tag_key, {"tag": reference, "digest": digest})
        if manifest is None:
            try:
                with transaction.atomic():
                    manifest = Manifest.objects.create(
                        tenant=tenant, repository=repository, digest=digest, media_type=parsed.media_type, size=len(payload),
                        payload=payload, artifact_type=parsed.artifact_type,
                        subject_digest=parsed.subject.digest if parsed.subject else "", annotations=parsed.annotations,
                    )
                    ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in blobs.values()], ignore_conflicts=True)
                    ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=m) for m in children.values()], ignore_conflicts=True)
                    replication_enqueue(tenant_id=tenant.pk, kind="manifest", digest=digest)
            except IntegrityError:
                # A concurrent push of the same manifest committed first.
                manifest = locks.manifest_for_update(tenant=tenant, repository=repository, digest=digest)
                if manifest is None:
                    raise
        # Pushed or referenced again: GC's grace period starts over for the manifest, its blobs and children.
        _gc_unmark(Manifest, [m.pk for m in [manifest, *children.values()] if m.gc_candidate_since is not None])
        _gc_unmark(Blob, [b.pk for b in blobs.values() if b.gc_candidate_since is not None])
        if tag_key is not None:
            Tag.objects.update_or_create(
                tenant=tenant, repository=repository, name=reference, defaults={"manifest": manifest, "last_pushed_at": now}
            )
        audit_record(action="manifest.push", actor=actor, tenant=tenant, target=f"{repository.name}@{digest}", ip=ip,
                     detail={"reference": reference, "media_type": parsed.media_type})
    events.record(tenant=tenant, repository=repository.name, digest=digest, size=len(payload), kind="manifest", direction="push", reference=reference)
    return manifest


def _refuse_immutable_move(*, tag: Tag | None, manifest: Manifest | None, digest: str) -> None:
    """DENIED when `tag` is immutable and this push would point it at another manifest (re-pushing its own is fine)."""
    if tag is None or not tag.immutable or (manifest is not None and tag.manifest_id == manifest.pk):
        return
    current = Manifest.objects.filter(pk=tag.manifest_id).values_list("digest", flat=True).first() or "another manifest"
    raise Denied(
        f"tag {tag.name!r} is immutable: it points at {current} and cannot be moved to {digest}; push under a new tag",
        detail={"tag": tag.name, "digest": current, "refused": digest},
    )


def _gc_unmark(model: type[Blob | Manifest], ids: list[int]) -> None:
    """Clear GC marks of rows in use again (skipping rows others hold: never waits, never deadlocks)."""
    if ids:
        model.objects.filter(pk__in=locks.gc_marked_for_unmark(model=model, ids=ids)).update(gc_candidate_since=None)


def manifest_delete(*, tenant: Tenant, repository: Repository, reference: str, actor: str = "", ip: str | None = None) -> None:
    """DELETE by digest removes the manifest and its tags; by tag removes only the tag."""
    if ":" not in reference:
        with transaction.atomic():
            tag = Tag.objects.select_for_update().filter(tenant=tenant, repository=repository, name=reference).first()
            if tag is None:
                raise ManifestUnknown(detail={"tag": reference})
            if tag.immutable:
                raise Denied(f"tag {reference!r} is immutable and cannot be deleted", detail={"tag": reference})
            tag.delete()
            audit_record(action="tag.delete", actor=actor, tenant=tenant, target=f"{repository.name}:{reference}", ip=ip)
        get_blob_store().delete([keys.tag_key(tenant.pk, repository.name, reference)])
        return
    with transaction.atomic():
        manifest = Manifest.objects.select_for_update().filter(tenant=tenant, repository=repository, digest=reference).first()
        if manifest is None:
            raise ManifestUnknown(detail={"digest": reference})
        parent = ManifestChild.objects.filter(child=manifest).values_list("parent__digest", flat=True).first()
        if parent:
            raise Denied(f"manifest is referenced by index {parent}; delete the index first", detail={"parent": parent})
        pinned = Tag.objects.filter(repository=repository, manifest=manifest, immutable=True).values_list("name", flat=True).first()
        if pinned:
            raise Denied(f"manifest is tagged with immutable tag {pinned!r}; it cannot be deleted", detail={"tag": pinned})
        tag_names = list(Tag.objects.filter(repository=repository, manifest=manifest).values_list("name", flat=True))
        Tag.objects.filter(repository=repository, manifest=manifest).delete()
        manifest.delete()
        audit_record(action="manifest.delete", actor=actor, tenant=tenant, target=f"{repository.name}@{reference}", ip=ip, detail={"tags": tag_names})
    store = get_blob_store()
    store.delete([keys.manifest_key(tenant.pk, repository.name, reference)] + [keys.tag_key(tenant.pk, repository.name, t) for t in tag_names])


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


