"""Manifests and tags: put (validate, store exact bytes, link), delete, tag removal."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.registry.errors import Denied, DigestInvalid, ManifestBlobUnknown, ManifestUnknown
from gateway.registry.media_types import parse_manifest
from gateway.registry.models import Blob, Manifest, ManifestBlob, ManifestChild, Repository, Tag
from gateway.registry.names import validate_tag
from gateway.registry.services import events
from gateway.storage import get_blob_store, keys


def manifest_put(*, tenant: Tenant, repository: Repository, reference: str, payload: bytes, content_type: str) -> Manifest:
    """Store a manifest under a tag or its digest. Everything it references must be in the repository."""
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    is_digest = ":" in reference
    if is_digest and reference != digest:
        raise DigestInvalid(f"manifest digest is {digest}, not {reference}", detail={"expected": reference, "actual": digest})
    if not is_digest:
        validate_tag(reference)
    parsed = parse_manifest(payload, content_type)

    blob_digests = {d.digest for d in parsed.blobs}
    blobs = {b.digest: b for b in Blob.objects.filter(tenant=tenant, digest__in=blob_digests, repository_links__repository=repository)}
    for d in parsed.blobs:
        blob = blobs.get(d.digest)
        if blob is None and not d.foreign:
            raise ManifestBlobUnknown(f"blob {d.digest} is not in repository {repository.name}", detail={"digest": d.digest})
        if blob is not None and blob.size != d.size:
            raise ManifestBlobUnknown(f"blob {d.digest} is {blob.size} bytes, the manifest says {d.size}", detail={"digest": d.digest})
    child_digests = {c.digest for c in parsed.children}
    children = {m.digest: m for m in Manifest.objects.filter(tenant=tenant, repository=repository, digest__in=child_digests)}
    for c in parsed.children:
        if c.digest not in children:
            raise ManifestBlobUnknown(f"manifest {c.digest} is not in repository {repository.name}", detail={"digest": c.digest})

    store = get_blob_store()
    # Exact bytes in the bucket first (idempotent: an existing object is left alone).
    store.put(keys.manifest_key(tenant.pk, repository.name, digest), payload, content_type=parsed.media_type, if_absent=True)
    if not is_digest:
        store.put_json(keys.tag_key(tenant.pk, repository.name, reference), {"tag": reference, "digest": digest})
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                manifest = Manifest.objects.create(
                    tenant=tenant, repository=repository, digest=digest, media_type=parsed.media_type, size=len(payload),
                    payload=payload, artifact_type=parsed.artifact_type,
                    subject_digest=parsed.subject.digest if parsed.subject else "", annotations=parsed.annotations,
                )
                ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in blobs.values()], ignore_conflicts=True)
                ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=m) for m in children.values()], ignore_conflicts=True)
        except IntegrityError:
            manifest = Manifest.objects.get(tenant=tenant, repository=repository, digest=digest)
        if not is_digest:
            Tag.objects.update_or_create(
                tenant=tenant, repository=repository, name=reference, defaults={"manifest": manifest, "last_pushed_at": now}
            )
    events.record(tenant=tenant, repository=repository.name, digest=digest, size=len(payload), kind="manifest", direction="push", reference=reference)
    return manifest


def manifest_delete(*, tenant: Tenant, repository: Repository, reference: str) -> None:
    """DELETE by digest removes the manifest and its tags; by tag removes only the tag."""
    if ":" not in reference:
        deleted, _ = Tag.objects.filter(tenant=tenant, repository=repository, name=reference).delete()
        if not deleted:
            raise ManifestUnknown(detail={"tag": reference})
        get_blob_store().delete([keys.tag_key(tenant.pk, repository.name, reference)])
        return
    with transaction.atomic():
        manifest = Manifest.objects.select_for_update().filter(tenant=tenant, repository=repository, digest=reference).first()
        if manifest is None:
            raise ManifestUnknown(detail={"digest": reference})
        parent = ManifestChild.objects.filter(child=manifest).values_list("parent__digest", flat=True).first()
        if parent:
            raise Denied(f"manifest is referenced by index {parent}; delete the index first", detail={"parent": parent})
        tag_names = list(Tag.objects.filter(repository=repository, manifest=manifest).values_list("name", flat=True))
        Tag.objects.filter(repository=repository, manifest=manifest).delete()
        manifest.delete()
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


