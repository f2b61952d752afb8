"""Rebuild a tenant's registry rows from the bucket alone (docs/decisions/0005).

The bucket describes every tenant completely: a small index object per committed blob
(`{digest, size, key}`), each manifest's exact bytes per repository, and a `{tag, digest}`
object per tag (storage/keys.py). `registry_rebuild` reads those back and recreates the
Blob, Repository, Manifest (+ ManifestBlob / ManifestChild / RepositoryBlob links) and Tag
rows that are missing. Rows that exist are kept untouched (PostgreSQL stays the truth), so
a second run changes nothing. Objects that cannot be trusted (a data object that is gone or
has the wrong size, bytes that do not hash to their digest, a tag whose manifest is gone)
are reported, never restored.

Cost: one LIST of each `/`-terminated prefix (Storj lists no other, docs/storj.md §5), plus a GET of every
index object, manifest and tag object and a HEAD of every blob's data object, but only for
rows that are missing. Blob bytes are never read.

What the bucket does not hold is not restored: repository visibility (private by default),
who pushed, when manifests were first pushed, and blobs that no manifest references get a
Blob row but no repository link (the garbage collector will reclaim them).
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.errors import ValidationError
from gateway.registry.digests import digest_algorithm, digest_of, parse_digest
from gateway.registry.errors import RegistryError
from gateway.registry.media_types import INDEX_TYPES, MAX_MANIFEST_BYTES, ParsedManifest, parse_manifest
from gateway.registry.models import Blob, Manifest, Repository, RepositoryBlob, Tag
from gateway.registry.names import validate_repository_name, validate_tag
from gateway.registry.services.manifests import manifest_rows_create
from gateway.registry.services.rebuild_base import (
    MAX_INDEX_OBJECT_BYTES,
    READERS,
    RebuildContext,
    RebuildReport,
    RepoObjects,
    chunks,
    json_parse,
    parallel,
    read_bounded,
)
from gateway.registry.stores import store_for
from gateway.storage import ObjectStat, keys

log = logging.getLogger(__name__)

# -- blobs -----------------------------------------------------------------------


def _digest_from_index_key(source: int, key: str) -> str:
    rest = key[len(keys.blob_index_prefix(source)) :]
    algo, _, name = rest.partition("/")
    if not name.endswith(".json") or "/" in name:
        raise ValueError("not an index object name (<algo>/<hex>.json)")
    digest = parse_digest(f"{algo}:{name[: -len('.json')]}")
    if keys.blob_index_key(source, digest) != key:
        raise ValueError("index object name does not match its digest")
    return digest


_TENANT_KEY = re.compile(r"^t/([1-9][0-9]*)/[a-z0-9._-]+(?:/[a-z0-9._-]+)*$")


def _key_tenant_id(key: str) -> int | None:
    """The tenant id a data key lives under (`t/<id>/...`), or None for anything else."""
    m = _TENANT_KEY.match(key)
    return int(m.group(1)) if m and ".." not in key else None


def _foreign_keys_refused(ctx: RebuildContext, blobs: list[Blob]) -> dict[str, str]:
    """Blobs whose data lives under the prefix of another tenant that exists: digest → why refused.

    A data key outside the source prefix is legitimate after a rebuild with --from-tenant-id
    (the index objects were copied, the bytes stayed under the old tenant's prefix), but a row
    must never point at the objects of a live tenant: that would share its data.
    """
    own = {ctx.source, ctx.tenant.pk}
    foreign = {t for b in blobs if (t := _key_tenant_id(b.storage_key)) is not None} - own
    live = set(Tenant.objects.filter(pk__in=foreign).values_list("pk", flat=True)) if foreign else set()
    return {
        b.digest: f"data object {b.storage_key} belongs to another existing tenant"
        for b in blobs
        if _key_tenant_id(b.storage_key) in live
    }


def _check_blob(ctx: RebuildContext, item: tuple[str, str]) -> Blob | str:
    """Read an index object and HEAD its data object: an unsaved Blob, or why it cannot be restored."""
    digest, index_key = item
    try:
        doc = json_parse(read_bounded(ctx.store, index_key, MAX_INDEX_OBJECT_BYTES))
    except ValueError as exc:
        return f"index object is unreadable: {exc}"
    if not isinstance(doc, dict):
        return "index object is not a JSON object"
    size, data_key = doc.get("size"), doc.get("key")
    if doc.get("digest") != digest:
        return f"index object names digest {str(doc.get('digest'))[:100]!r}, its key says {digest}"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "index object has no valid size"
    if not isinstance(data_key, str) or not keys.is_valid_key(data_key) or _key_tenant_id(data_key) is None:
        return f"index object's data key {str(data_key)[:200]!r} is not a tenant object key"
    stat = ctx.store.stat(data_key)
    if stat is None:
        return f"data object {data_key} is missing"
    if stat.size != size:
        return f"data object {data_key} is {stat.size} bytes, the index says {size}"
    return Blob(tenant=ctx.tenant, digest=digest, size=size, storage_key=data_key)


def _rebuild_blobs(ctx: RebuildContext) -> None:
    report, tenant = ctx.report, ctx.tenant
    candidates: list[tuple[str, str]] = []
    for obj in ctx.store.list(keys.blob_index_prefix(ctx.source)):
        try:
            candidates.append((_digest_from_index_key(ctx.source, obj.key), obj.key))
        except (ValueError, RegistryError) as exc:
            report.problem("blob", obj.key, f"unexpected object under the blob index: {getattr(exc, 'message', exc)}")
    for chunk in chunks(candidates):
        existing = {b.digest: b for b in Blob.objects.filter(tenant=tenant, digest__in=[d for d, _ in chunk])}
        report.blobs.kept += len(existing)
        ctx.blobs.update(existing)
        todo = [c for c in chunk if c[0] not in existing]
        new: list[Blob] = []
        for (digest, index_key), checked in zip(todo, parallel(ctx, lambda c: _check_blob(ctx, c), todo), strict=True):
            if isinstance(checked, str):
                report.problem("blob", index_key, checked, digest=digest)
            else:
                new.append(checked)
        refused = _foreign_keys_refused(ctx, new)
        for digest, reason in refused.items():
            report.problem("blob", keys.blob_index_key(ctx.source, digest), reason, digest=digest)
        new = [b for b in new if b.digest not in refused]
        if ctx.reanchor:
            # Bucket before database, as on push; if_absent keeps whatever a newer push wrote.
            for b in new:
                ctx.store.put_json(
                    keys.blob_index_key(tenant.pk, b.digest), keys.blob_index_doc(b.digest, b.size, b.storage_key), if_absent=True
                )
                report.objects_written += 1
        Blob.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent push may have committed one meanwhile
        restored = {b.digest: b for b in Blob.objects.filter(tenant=tenant, digest__in=[b.digest for b in new])}
        report.blobs.restored += len(restored)
        ctx.blobs.update(restored)


# -- repositories ------------------------------------------------------------------


def _scan_repositories(ctx: RebuildContext) -> dict[str, RepoObjects]:
    prefix = keys.repos_prefix(ctx.source)
    repos: dict[str, RepoObjects] = {}
    for obj in ctx.store.list(prefix):
        rest = obj.key[len(prefix) :]
        try:
            if "/_manifests/" in rest:
                name, _, tail = rest.partition("/_manifests/")
                validate_repository_name(name)
                digest = parse_digest(tail.replace("/", ":", 1))
                if keys.manifest_key(ctx.source, name, digest) != obj.key:
                    raise ValueError("manifest object name does not match its digest")
                repos.setdefault(name, RepoObjects()).manifests[digest] = obj.key
            elif "/_tags/" in rest:
                name, _, hexname = rest.partition("/_tags/")
                validate_repository_name(name)
                tag = validate_tag(keys.tag_from_key_name(hexname))
                if keys.tag_key(ctx.source, name, tag) != obj.key:
                    raise ValueError("tag object name does not match its tag")
                repos.setdefault(name, RepoObjects()).tags[tag] = obj
            else:
                raise ValueError("neither a manifest (_manifests/) nor a tag (_tags/)")
        except (ValueError, RegistryError) as exc:
            kind = "tag" if "/_tags/" in rest else "manifest"
            ctx.report.problem(kind, obj.key, f"unexpected object under the repositories: {getattr(exc, 'message', exc)}")
    return repos


def _load_manifest(ctx: RebuildContext, item: tuple[str, str]) -> tuple[str, bytes, ParsedManifest] | tuple[str, None, str]:
    digest, key = item
    try:
        payload = read_bounded(ctx.store, key, MAX_MANIFEST_BYTES)
    except ValueError as exc:
        return key, None, str(exc)
    actual = digest_of(payload, digest_algorithm(digest))
    if actual != digest:
        return key, None, f"manifest bytes hash to {actual}, not {digest}"
    try:
        return key, payload, parse_manifest(payload, "")
    except RegistryError as exc:
        return key, None, f"manifest is not valid: {exc.message}"


def _manifest_blockers(ctx: RebuildContext, parsed: ParsedManifest) -> list[str]:
    unknown = [d.digest for d in parsed.blobs if d.digest not in ctx.blobs]
    if unknown:  # a blob row may exist without an index object in the bucket
        ctx.blobs.update({b.digest: b for b in Blob.objects.filter(tenant=ctx.tenant, digest__in=unknown)})
    reasons = []
    for d in parsed.blobs:
        blob = ctx.blobs.get(d.digest)
        if blob is None and not d.foreign:
            reasons.append(f"blob {d.digest} is not restorable")
        elif blob is not None and blob.size != d.size:
            reasons.append(f"blob {d.digest} is {blob.size} bytes, the manifest says {d.size}")
    return reasons


def _create_manifest(
    ctx: RebuildContext, repo: Repository, digest: str, payload: bytes, parsed: ParsedManifest, present: dict[str, Manifest]
) -> bool:
    """Create one manifest with its links in one transaction; False when a concurrent push made it first.

    DataError (a value PostgreSQL cannot store, which parse_manifest should have refused) propagates
    with nothing written; the caller reports the object.
    """
    blobs = {d.digest: ctx.blobs[d.digest] for d in parsed.blobs if d.digest in ctx.blobs}
    children = {c.digest: present[c.digest] for c in parsed.children}
    try:
        with transaction.atomic():
            RepositoryBlob.objects.bulk_create(
                [RepositoryBlob(tenant=ctx.tenant, repository=repo, blob=b) for b in blobs.values()], ignore_conflicts=True
            )
            manifest = manifest_rows_create(
                tenant=ctx.tenant, repository=repo, digest=digest, payload=payload, parsed=parsed, blobs=blobs, children=children
            )
    except IntegrityError:
        present[digest] = Manifest.objects.get(tenant=ctx.tenant, repository=repo, digest=digest)
        return False
    present[digest] = manifest
    return True


def _load_manifests(
    ctx: RebuildContext, repo: Repository, todo: list[tuple[str, str]]
) -> dict[str, tuple[str, bytes, ParsedManifest]]:
    """Read and check the missing manifests' objects: digest → (key, bytes, parsed); the others are reported."""
    pending: dict[str, tuple[str, bytes, ParsedManifest]] = {}
    for chunk in chunks(todo):
        for (digest, _), (key, payload, parsed) in zip(
            chunk, parallel(ctx, lambda i: _load_manifest(ctx, i), chunk), strict=True
        ):
            if payload is None or isinstance(parsed, str):
                ctx.report.problem("manifest", key, str(parsed), digest=digest, repository=repo.name)
            else:
                pending[digest] = (key, payload, parsed)
    return pending


def _rebuild_manifests(ctx: RebuildContext, repo: Repository, objects: RepoObjects) -> dict[str, Manifest]:
    report = ctx.report
    present = {
        m.digest: m
        for m in Manifest.objects.filter(tenant=ctx.tenant, repository=repo).only("id", "digest", "size", "media_type")
    }
    todo = [(d, k) for d, k in objects.manifests.items() if d not in present]
    report.manifests.kept += len(objects.manifests) - len(todo)
    pending = _load_manifests(ctx, repo, todo)
    # Image manifests first, then indexes whose children are all present (indexes may nest).
    while pending:
        ready = sorted(
            (d for d, (_, _, p) in pending.items() if all(c.digest in present for c in p.children)),
            key=lambda d: (pending[d][2].media_type in INDEX_TYPES, d),
        )
        if not ready:
            break
        for digest in ready:
            key, payload, parsed = pending.pop(digest)
            blockers = _manifest_blockers(ctx, parsed)
            if blockers:
                report.problem("manifest", key, "; ".join(blockers), digest=digest, repository=repo.name)
                continue
            if ctx.reanchor:
                ctx.store.put(
                    keys.manifest_key(ctx.tenant.pk, repo.name, digest), payload, content_type=parsed.media_type, if_absent=True
                )
                report.objects_written += 1
            try:
                created = _create_manifest(ctx, repo, digest, payload, parsed, present)
            except DataError as exc:
                why = f"manifest holds a value the database cannot store: {str(exc)[:200]}"
                report.problem("manifest", key, why, digest=digest, repository=repo.name)
                continue
            if created:
                report.manifests.restored += 1
            else:
                report.manifests.kept += 1
    for digest, (key, _, parsed) in sorted(pending.items()):
        missing = sorted(c.digest for c in parsed.children if c.digest not in present)
        why = f"index references manifests that are not restorable: {', '.join(missing)}"
        report.problem("manifest", key, why, digest=digest, repository=repo.name)
    return present


def _load_tag(ctx: RebuildContext, item: tuple[str, ObjectStat]) -> str | dict[str, Any]:
    tag, obj = item
    try:
        doc = json_parse(read_bounded(ctx.store, obj.key, MAX_INDEX_OBJECT_BYTES))
    except ValueError as exc:
        return f"tag object is unreadable: {exc}"
    if not isinstance(doc, dict) or doc.get("tag") != tag or not isinstance(doc.get("digest"), str):
        return f'tag object must be {{"tag": {tag!r}, "digest": ...}}'
    return doc


def _rebuild_tags(ctx: RebuildContext, repo: Repository, objects: RepoObjects, present: dict[str, Manifest]) -> None:
    report = ctx.report
    existing = set(Tag.objects.filter(tenant=ctx.tenant, repository=repo).values_list("name", flat=True))
    todo = [(t, o) for t, o in sorted(objects.tags.items()) if t not in existing]
    report.tags.kept += len(objects.tags) - len(todo)
    for chunk in chunks(todo):
        for (tag, obj), doc in zip(chunk, parallel(ctx, lambda i: _load_tag(ctx, i), chunk), strict=True):
            if isinstance(doc, str):
                report.problem("tag", obj.key, doc, tag=tag, repository=repo.name)
                continue
            manifest = present.get(doc["digest"])
            if manifest is None:
                report.problem(
                    "tag",
                    obj.key,
                    f"tag points at manifest {doc['digest'][:100]}, which is not restorable",
                    tag=tag,
                    repository=repo.name,
                )
                continue
            if ctx.reanchor:
                ctx.store.put_json(
                    keys.tag_key(ctx.tenant.pk, repo.name, tag), {"tag": tag, "digest": manifest.digest}, if_absent=True
                )
                report.objects_written += 1
            pushed_at: datetime = obj.last_modified or timezone.now()
            _, created = Tag.objects.get_or_create(
                tenant=ctx.tenant, repository=repo, name=tag, defaults={"manifest": manifest, "last_pushed_at": pushed_at}
            )
            if created:
                report.tags.restored += 1
            else:  # pushed meanwhile: the newer tag wins
                report.tags.kept += 1


def _rebuild_repository(ctx: RebuildContext, name: str, objects: RepoObjects) -> None:
    repo, created = Repository.objects.get_or_create(tenant=ctx.tenant, name=name)
    if created:
        ctx.report.repositories.restored += 1
    else:
        ctx.report.repositories.kept += 1
    present = _rebuild_manifests(ctx, repo, objects)
    _rebuild_tags(ctx, repo, objects, present)


def registry_rebuild(*, tenant: Tenant, source_tenant_id: int | None = None) -> RebuildReport:
    """Recreate the tenant's missing registry rows from the bucket (its own prefix, or source_tenant_id's); idempotent, keeps existing rows."""
    source = tenant.pk if source_tenant_id is None else source_tenant_id
    if not isinstance(source, int) or isinstance(source, bool) or source <= 0:
        raise ValidationError(f"source tenant id must be a positive integer, got {source_tenant_id!r}")
    if source != tenant.pk:
        other = Tenant.objects.filter(pk=source).values_list("slug", flat=True).first()
        if other is not None:
            # Restoring another live tenant's objects into this one would share its data.
            raise ValidationError(
                f"tenant id {source} belongs to the existing tenant {other!r}; --from-tenant-id is only for the "
                "bucket prefix of a tenant whose database row is gone"
            )
    report = RebuildReport(tenant=tenant.slug, tenant_id=tenant.pk, source_tenant_id=source)
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="rebuild") as pool:
        ctx = RebuildContext(tenant=tenant, source=source, store=store_for(tenant), report=report, pool=pool)
        _rebuild_blobs(ctx)
        for name, objects in sorted(_scan_repositories(ctx).items()):
            _rebuild_repository(ctx, name, objects)
    log.info(
        "rebuild of tenant %s from prefix %s: %s", tenant.slug, keys.tenant_prefix(source), json.dumps(report.as_dict()["blobs"])
    )
    return report
