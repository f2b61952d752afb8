"""Reads about one manifest: its detail (the admin API's manifest GET) and its overview (the dashboard's manifest page).

Every query filters by tenant first, and none runs per layer, child, tag or referrer: an
image with 200 layers costs what one with 2 does.

Sharing is counted by what keeps bytes alive: a blob is *shared* with another repository when
a manifest of that repository references it, and an image's *unique* bytes are those of the
blobs (config and layers) no other manifest of the organisation references: what deleting the
image and collecting garbage would free (docs/decisions/0032).
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count, Q, Sum

from accounts.models import Tenant
from gateway.registry.media_types import IMAGE_TYPES, INDEX_TYPES, parse_manifest
from gateway.registry.models import Blob, Manifest, ManifestBlob, ManifestChild, Repository, Tag
from gateway.registry.selectors import referrers_list
from gateway.registry.stores import store_for
from gateway.storage import StorageError

# A manifest's detail reads its image config from the store: only configs this small, only these types.
CONFIG_READ_MAX = 256 * 1024
IMAGE_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
DETAIL_LIST_MAX = 1000  # tags and referrers listed with one manifest


def _text(doc: dict, key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str] | None:
    """A config's Entrypoint or Cmd: a list of strings (None when absent or not one)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _platform(entry: dict) -> dict[str, str | None] | None:
    platform = entry.get("platform")
    if not isinstance(platform, dict):
        return None
    return {k: _text(platform, k) for k in ("os", "architecture", "variant")} | {"os_version": _text(platform, "os.version")}


def config_document(*, tenant: Tenant, blob: Blob) -> dict[str, Any] | None:
    """An image config blob's JSON object, read from the store; None when too big, unreadable or not an object."""
    if blob.size > CONFIG_READ_MAX:
        return None
    try:
        doc = json.loads(store_for(tenant).read_small(blob.storage_key))
    except (StorageError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _config_summary(*, tenant: Tenant, media_type: str, digest: str, size: int) -> dict[str, Any]:
    """os, architecture, created, labels, entrypoint and cmd of an image config (None where unread: too big, not an image, unreadable)."""
    summary: dict[str, Any] = {"media_type": media_type, "digest": digest, "size": size, "os": None, "architecture": None}
    summary |= {"variant": None, "created": None, "labels": {}, "entrypoint": None, "cmd": None}
    blob = Blob.objects.filter(tenant=tenant, digest=digest).only("storage_key", "size").first()
    doc = config_document(tenant=tenant, blob=blob) if media_type in IMAGE_CONFIG_TYPES and blob is not None else None
    if doc is None:
        return summary
    config: dict[str, Any] = doc["config"] if isinstance(doc.get("config"), dict) else {}
    labels = config.get("Labels")
    summary |= {k: _text(doc, k) for k in ("os", "architecture", "variant", "created")}
    summary["labels"] = {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}
    summary |= {"entrypoint": _strings(config.get("Entrypoint")), "cmd": _strings(config.get("Cmd"))}
    return summary


def manifest_detail(*, tenant: Tenant, repository: Repository, digest: str) -> dict[str, Any] | None:
    """A manifest of the repository by digest, with its config summary, layers, platform children, referrers and tags; or None."""
    manifest = Manifest.objects.filter(tenant=tenant, repository=repository, digest=digest).first()
    if manifest is None:
        return None
    payload = bytes(manifest.payload)
    parsed = parse_manifest(payload, manifest.media_type)  # it was stored valid
    entries = json.loads(payload).get("manifests") or []
    config = parsed.blobs[0] if manifest.media_type in IMAGE_TYPES and parsed.blobs else None
    tags = Tag.objects.filter(tenant=tenant, repository=repository, manifest=manifest).order_by("name")
    return {
        "id": manifest.pk,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "artifact_type": manifest.artifact_type,
        "size": manifest.size,
        "subject": manifest.subject_digest or None,
        "annotations": manifest.annotations,
        "pushed_at": manifest.created_at,
        "last_pulled_at": manifest.last_pulled_at,
        "config": None if config is None else _config_summary(tenant=tenant, **_descriptor(config)),
        "layers": [_descriptor(d) for d in (parsed.blobs[1:] if config is not None else [])],
        "manifests": [_descriptor(c) | {"platform": _platform(e)} for c, e in zip(parsed.children, entries, strict=True)],
        "referrers": [
            _descriptor(m) | {"artifact_type": m.artifact_type}
            for m in referrers_list(tenant=tenant, repository=repository, digest=digest, artifact_type=None)[:DETAIL_LIST_MAX]
        ],
        "tags": list(tags.values_list("name", flat=True)[:DETAIL_LIST_MAX]),
    }


def _descriptor(d: Any) -> dict[str, Any]:
    return {"media_type": d.media_type, "digest": d.digest, "size": d.size}


def referrers_map(*, tenant: Tenant, repository: Repository, digests: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The referrers of each of `digests` in the repository (signatures, SBOMs, attestations), oldest first; one query."""
    found: dict[str, list[dict[str, Any]]] = {d: [] for d in digests}
    if not digests:
        return found
    qs = (
        Manifest.objects.filter(tenant=tenant, repository=repository, subject_digest__in=sorted(set(digests)))
        .order_by("created_at", "pk")
        .values("subject_digest", "digest", "media_type", "size", "artifact_type")
    )
    for row in qs[: DETAIL_LIST_MAX * 4]:
        referrer: dict[str, Any] = dict(row)
        subject = referrer.pop("subject_digest")
        if len(found[subject]) < DETAIL_LIST_MAX:
            found[subject].append(referrer)
    return found


def blob_sharing_list(*, tenant: Tenant, repository: Repository, manifest_ids: list[int]) -> list[dict[str, Any]]:
    """Each blob the manifests `manifest_ids` reference: digest, stored size, and how many manifests outside them and other repositories reference it.

    One grouped query. `other_repositories` counts the tenant's other repositories (not being
    deleted) with a manifest referencing the blob; `other_manifests` every manifest of the
    tenant outside `manifest_ids` that does: a blob with none is freed when these manifests go.
    """
    if not manifest_ids:
        return []
    mine = ManifestBlob.objects.filter(manifest_id__in=manifest_ids, manifest__tenant=tenant).values("blob_id")
    outside = ~Q(manifest_id__in=manifest_ids)
    elsewhere = ~Q(manifest__repository=repository) & Q(manifest__repository__deleted_name="")
    rows = (
        ManifestBlob.objects.filter(blob__tenant=tenant, blob_id__in=mine)
        .values("blob__digest", "blob__size")
        .annotate(
            other_manifests=Count("manifest", distinct=True, filter=outside),
            other_repositories=Count("manifest__repository", distinct=True, filter=elsewhere),
        )
    )
    return [
        {
            "digest": r["blob__digest"],
            "size": r["blob__size"],
            "other_manifests": r["other_manifests"],
            "other_repositories": r["other_repositories"],
        }
        for r in rows
    ]


def _holders(*, tenant: Tenant, manifest_id: int) -> list[dict[str, Any]]:
    """The indexes listing this manifest, each with its tags (two queries)."""
    parents = list(
        ManifestChild.objects.filter(child_id=manifest_id, parent__tenant=tenant)
        .order_by("parent_id")
        .values("parent_id", "parent__digest", "parent__media_type")[:DETAIL_LIST_MAX]
    )
    tags: dict[int, list[str]] = {}
    rows = Tag.objects.filter(tenant=tenant, manifest_id__in=[p["parent_id"] for p in parents]).order_by("name")
    for mid, name in rows.values_list("manifest_id", "name")[:DETAIL_LIST_MAX]:
        tags.setdefault(mid, []).append(name)
    return [
        {"digest": p["parent__digest"], "media_type": p["parent__media_type"], "tags": tags.get(p["parent_id"], [])}
        for p in parents
    ]


def _children(*, tenant: Tenant, repository: Repository, detail: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """An index's children as its payload lists them, each with its image bytes (config + layers) and referrers; their ids."""
    digests = [c["digest"] for c in detail["manifests"]]
    found = (
        Manifest.objects.filter(tenant=tenant, repository=repository, digest__in=sorted(set(digests)))
        .values("id", "digest")
        .annotate(image_bytes=Sum("blob_refs__blob__size"))
    )
    rows: dict[str, dict[str, Any]] = {m["digest"]: dict(m) for m in found}
    referrers = referrers_map(tenant=tenant, repository=repository, digests=digests)
    children = []
    for child in detail["manifests"]:
        row = rows.get(child["digest"], {})
        children.append(child | {"image_bytes": row.get("image_bytes"), "referrers": referrers[child["digest"]]})
    return children, sorted({r["id"] for r in rows.values()})


def manifest_overview(*, tenant: Tenant, repository: Repository, digest: str) -> dict[str, Any] | None:
    """`manifest_detail` and what a page about it shows: its children with their referrers (an index), the layers'
    sharing and the unique bytes, the indexes holding it, and why garbage collection keeps it or not; None if absent.

    A constant number of queries whatever the number of layers, children, tags and referrers.
    """
    detail = manifest_detail(tenant=tenant, repository=repository, digest=digest)
    if detail is None:
        return None
    is_index = detail["media_type"] in INDEX_TYPES
    children, child_ids = _children(tenant=tenant, repository=repository, detail=detail) if is_index else ([], [])
    blobs = blob_sharing_list(tenant=tenant, repository=repository, manifest_ids=child_ids if is_index else [detail["id"]])
    by_digest = {b["digest"]: b for b in blobs}
    layers = [
        layer | {"other_repositories": by_digest[layer["digest"]]["other_repositories"] if layer["digest"] in by_digest else 0}
        for layer in detail["layers"]
    ]
    holders = _holders(tenant=tenant, manifest_id=detail["id"])
    return detail | {
        "is_index": is_index,
        "kind": "index"
        if is_index
        else "image"
        if (detail["config"] or {}).get("media_type") in IMAGE_CONFIG_TYPES
        else "artifact",
        "children": children,
        "layers": layers,
        "stored_bytes": sum(b["size"] for b in blobs),
        "unique_bytes": sum(b["size"] for b in blobs if b["other_manifests"] == 0),
        "shared_layers": sum(1 for layer in layers if layer["other_repositories"]),
        "holders": holders,
        "kept_by": _kept_by(detail, holders),
    }


def _kept_by(detail: dict[str, Any], holders: list[dict[str, Any]]) -> str:
    """Why GC keeps the manifest: "tag", "index" (a platform child: part of its index, never garbage), "subject"; "" if nothing does."""
    if detail["tags"]:
        return "tag"
    if holders:
        return "index"
    if detail["subject"]:
        return "subject"
    return ""
