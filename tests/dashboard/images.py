"""Real images, multi-platform indexes and referrer artifacts pushed through /v2/ (tests/helpers.py Reg), for the manifest and GC pages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.helpers import Reg, sha

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def config(arch: str, *, variant: str | None = None, labels: dict[str, str] | None = None, **extra: object) -> bytes:
    doc: dict = {"architecture": arch, "os": "linux", "created": "2026-11-30T12:00:00Z"}
    if variant:
        doc["variant"] = variant
    doc["config"] = {"Labels": labels or {}, **extra}
    return json.dumps(doc).encode()


@dataclass
class Platform:
    arch: str
    digest: str
    size: int
    image_bytes: int  # config + layers
    variant: str | None = None


@dataclass
class Index:
    digest: str
    platforms: list[Platform] = field(default_factory=list)
    referrers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # subject → [(artifactType, digest)]


def push_image_by_digest(reg: Reg, repo: str, layers: list[bytes], cfg: bytes) -> tuple[str, bytes]:
    """An image pushed by digest (no tag names it): a platform of an index, as buildx pushes one."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": reg.push_blob(repo, cfg), "size": len(cfg)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": reg.push_blob(repo, layer), "size": len(layer)}
            for layer in layers
        ],
    }
    payload = json.dumps(doc).encode()
    response = reg.push_manifest(repo, sha(payload), payload, OCI)
    assert response.status_code == 201, response.content
    return sha(payload), payload


def push_artifact(reg: Reg, repo: str, *, subject: str, artifact_type: str, body: bytes) -> str:
    """A referrer (an SBOM, a signature) of `subject`, pushed by digest: untagged, as oras and cosign push them."""
    empty = reg.push_blob(repo, b"{}")
    blob = reg.push_blob(repo, body)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": blob, "size": len(body)}],
        "subject": {"mediaType": OCI, "digest": subject, "size": 1},
    }
    payload = json.dumps(doc).encode()
    response = reg.push_manifest(repo, sha(payload), payload, OCI)
    assert response.status_code == 201, response.content
    return sha(payload)


def push_index(
    reg: Reg, repo: str, tag: str, *, arches: tuple[str, ...] = ("amd64", "arm64"), layers_per_platform: int = 1, salt: str = ""
) -> Index:
    """A tagged index of one image per architecture (its children pushed by digest only, as buildx does)."""
    entries, platforms = [], []
    for arch in arches:
        variant = "v8" if arch == "arm64" else None
        cfg = config(arch, variant=variant)
        layers = [f"{salt}{repo}-{arch}-layer-{i}".encode() * 40 for i in range(layers_per_platform)]
        digest, payload = push_image_by_digest(reg, repo, layers, cfg)
        platform = {"architecture": arch, "os": "linux"} | ({"variant": variant} if variant else {})
        entries.append({"mediaType": OCI, "digest": digest, "size": len(payload), "platform": platform})
        platforms.append(Platform(arch, digest, len(payload), len(cfg) + sum(len(layer) for layer in layers), variant=variant))
    payload = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    response = reg.push_manifest(repo, tag, payload, OCI_INDEX)
    assert response.status_code == 201, response.content
    return Index(sha(payload), platforms)


def push_index_with_referrers(reg: Reg, repo: str, tag: str, **kwargs: object) -> Index:
    """`push_index`, then an SBOM of the index and a signature of its first platform."""
    index = push_index(reg, repo, tag, **kwargs)  # type: ignore[arg-type]
    sbom = push_artifact(reg, repo, subject=index.digest, artifact_type="application/spdx+json", body=b'{"spdxVersion": "2.3"}')
    first = index.platforms[0].digest
    sig = push_artifact(
        reg,
        repo,
        subject=first,
        artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json",
        body=b"signature-" + first.encode(),
    )
    index.referrers = {
        index.digest: [("application/spdx+json", sbom)],
        first: [("application/vnd.dev.cosign.artifact.sig.v1+json", sig)],
    }
    return index
