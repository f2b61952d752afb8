"""Test images on disk, deterministic from a seed: OCI layouts and archives, `docker import` and `docker load` tarballs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

OCI_LAYOUT_VERSION = "1.0.0"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = f"{MT_OCI_MANIFEST}, {MT_OCI_INDEX}, {MT_DOCKER_MANIFEST}, {MT_DOCKER_MANIFEST_LIST}"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
EPOCH = "1970-01-01T00:00:00Z"

_CHUNK = 4 << 20


def canonical_json(obj: object) -> bytes:
    """Compact, key-sorted JSON bytes (what the harness writes and digests)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """An OCI descriptor's essentials; `diff_id` is the uncompressed tar's digest (layers only)."""

    digest: str
    size: int
    media_type: str
    diff_id: str = ""

    def descriptor(self) -> dict[str, object]:
        """The OCI descriptor JSON object."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ImageInfo:
    """One image written into an OCI layout by `build_oci_layout`."""

    layout: Path
    tag: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    manifest_bytes: bytes

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest

    @property
    def config_digest(self) -> str:
        return self.config.digest

    @property
    def layer_digests(self) -> list[str]:
        return [b.digest for b in self.layers]

    @property
    def layer_sizes(self) -> list[int]:
        return [b.size for b in self.layers]

    @property
    def diff_ids(self) -> list[str]:
        return [b.diff_id for b in self.layers]

    @property
    def oci_ref(self) -> str:
        """The skopeo source/destination `oci:DIR:tag`."""
        return f"oci:{self.layout}:{self.tag}"

    def blob_path(self, digest: str) -> Path:
        """Where a blob of this layout lives on disk."""
        algo, hexdigest = digest.split(":", 1)
        return self.layout / "blobs" / algo / hexdigest

    def all_blobs(self) -> list[Blob]:
        """Config and layers (what a registry must store besides the manifest)."""
        return [self.config, *self.layers]


def tar_size(file_size: int) -> int:
    """Bytes of a tar holding one regular file of `file_size` bytes (header, padding, end-of-archive)."""
    return 512 + file_size + (-file_size % 512) + 1024


def _layer_tar_chunks(file_size: int, seed_key: str, name: str) -> Iterator[bytes]:
    """A tar with one file `name` of `file_size` pseudo-random bytes from `random.Random(seed_key)`."""
    info = tarfile.TarInfo(name)
    info.size = file_size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = "root"
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    rng = random.Random(seed_key)
    remaining = file_size
    while remaining:
        n = min(_CHUNK, remaining)
        yield rng.randbytes(n)
        remaining -= n
    yield b"\0" * ((-file_size % 512) + 1024)


def _layer_seed_key(seed: int, index: int, size: int) -> str:
    return f"wharf-e2e:{seed}:{index}:{size}"


def _write_stream(directory: Path, chunks: Iterable[bytes], *, gzip_level: int | None) -> tuple[Path, str, int, str]:
    """Write chunks (gzip-compressed unless `gzip_level` is None) to a temp file in `directory`.

    Returns (temp path, digest of what was written, its size, digest of the uncompressed stream).
    """
    raw = hashlib.sha256()
    out_hash = hashlib.sha256()
    size = 0
    compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, 31) if gzip_level is not None else None  # 31: gzip, mtime 0
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "wb") as f:
        for chunk in chunks:
            raw.update(chunk)
            data = compressor.compress(chunk) if compressor else chunk
            if data:
                out_hash.update(data)
                f.write(data)
                size += len(data)
        if compressor:
            data = compressor.flush()
            out_hash.update(data)
            f.write(data)
            size += len(data)
    return Path(tmp), "sha256:" + out_hash.hexdigest(), size, "sha256:" + raw.hexdigest()


def _put_blob_file(blobs_dir: Path, tmp: Path, digest: str) -> None:
    target = blobs_dir / digest.split(":", 1)[1]
    if target.exists():
        tmp.unlink()
    else:
        tmp.replace(target)


def _put_blob_bytes(blobs_dir: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    target = blobs_dir / digest.split(":", 1)[1]
    if not target.exists():
        target.write_bytes(data)
    return digest


def image_config(diff_ids: Sequence[str], *, seed: int, layer_sizes: Sequence[int]) -> dict[str, object]:
    """A valid OCI image config for linux/amd64 whose rootfs.diff_ids are `diff_ids`."""
    return {
        "created": EPOCH,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.wharf.e2e.seed": str(seed)},
        },
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [
            {"created": EPOCH, "created_by": f"wharf e2e harness: layer {i}, {n} random bytes"} for i, n in enumerate(layer_sizes)
        ],
    }


def build_oci_layout(
    dir: Path | str,
    *,
    layers: Sequence[int],
    tag: str = "v1",
    seed: int = 0,
    compression: Literal["gzip", "none"] = "gzip",
    gzip_level: int = 0,
) -> ImageInfo:
    """Write an OCI image layout with one image manifest tagged `tag`; return its digests.

    Each layer `i` is a tar holding `/layer-<i>.bin` with `layers[i]` pseudo-random (incompressible)
    bytes determined by (seed, i, size) only, so images built with the same seed share their
    common leading layers. Layers are gzip streams at `gzip_level` (default 0: stored deflate
    blocks, valid gzip at memcpy speed, about 1 s for 128 MiB) or, with compression="none",
    plain tars (media type ...tar). Same arguments, same bytes, same digests. An existing layout
    in `dir` gets the image added (an entry with the same tag is replaced).
    """
    layout = Path(dir)
    blobs_dir = layout / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    layer_blobs: list[Blob] = []
    for i, size in enumerate(layers):
        chunks = _layer_tar_chunks(size, _layer_seed_key(seed, i, size), f"layer-{i}.bin")
        level = gzip_level if compression == "gzip" else None
        tmp, digest, blob_size, diff_id = _write_stream(blobs_dir, chunks, gzip_level=level)
        _put_blob_file(blobs_dir, tmp, digest)
        media_type = MT_OCI_LAYER_GZIP if compression == "gzip" else MT_OCI_LAYER_TAR
        layer_blobs.append(Blob(digest, blob_size, media_type, diff_id))

    config_bytes = canonical_json(image_config([b.diff_id for b in layer_blobs], seed=seed, layer_sizes=layers))
    config = Blob(_put_blob_bytes(blobs_dir, config_bytes), len(config_bytes), MT_OCI_CONFIG)
    manifest_bytes = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [b.descriptor() for b in layer_blobs],
        }
    )
    manifest = Blob(_put_blob_bytes(blobs_dir, manifest_bytes), len(manifest_bytes), MT_OCI_MANIFEST)

    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    index_path = layout / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    entries = [m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) != tag]
    entries.append(
        {**manifest.descriptor(), "annotations": {ANNOTATION_REF_NAME: tag}, "platform": {"architecture": "amd64", "os": "linux"}}
    )
    index["manifests"] = entries
    index_path.write_text(json.dumps(index, indent=1))
    return ImageInfo(layout, tag, manifest, config, tuple(layer_blobs), manifest_bytes)


@dataclass(frozen=True)
class IndexInfo:
    """A multi-platform image written by `build_oci_index_layout`: the index and each platform's image."""

    layout: Path
    tag: str
    index: Blob
    index_bytes: bytes
    images: dict[str, ImageInfo]  # by "os/architecture"

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def build_oci_index_layout(dir: Path | str, *, platforms: dict[str, Sequence[int]], tag: str = "v1", seed: int = 0) -> IndexInfo:
    """Write an OCI layout whose `tag` names an image index over one image per platform ("linux/arm64": layer sizes).

    Each platform's image is `build_oci_layout`'s (seeded per platform, so no layers are shared);
    push it with `skopeo copy --all --preserve-digests`.
    """
    layout = Path(dir)
    images: dict[str, ImageInfo] = {}
    entries = []
    for i, (platform, layers) in enumerate(platforms.items()):
        os_name, architecture = platform.split("/", 1)
        image = build_oci_layout(layout, layers=layers, tag=f"{tag}-{i}", seed=seed * 1000 + i)
        images[platform] = image
        entries.append({**image.manifest.descriptor(), "platform": {"architecture": architecture, "os": os_name}})
    index_bytes = canonical_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries})
    index = Blob(_put_blob_bytes(layout / "blobs" / "sha256", index_bytes), len(index_bytes), MT_OCI_INDEX)
    top = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [{**index.descriptor(), "annotations": {ANNOTATION_REF_NAME: tag}}],
    }
    (layout / "index.json").write_text(json.dumps(top, indent=1))
    return IndexInfo(layout, tag, index, index_bytes, images)


def write_oci_archive(layout: Path | str, path: Path | str, *, image_name: str | None = None) -> Path:
    """Tar an OCI layout into `path` (what `ctr images import` reads).

    With `image_name` ("host:port/repo", no tag), every tagged entry also gets the containerd
    annotation io.containerd.image.name = "<image_name>:<tag>", which `ctr images import` uses
    as the image's full name (otherwise it would name it "import-<date>" or need --base-name).
    """
    layout = Path(layout)
    path = Path(path)
    index = json.loads((layout / "index.json").read_text())
    if image_name:
        for m in index["manifests"]:
            annotations = m.setdefault("annotations", {})
            if ANNOTATION_REF_NAME in annotations:
                annotations[ANNOTATION_CONTAINERD_NAME] = f"{image_name}:{annotations[ANNOTATION_REF_NAME]}"
    index_bytes = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        tar.add(layout / "oci-layout", arcname="oci-layout")
        info = tarfile.TarInfo("index.json")
        info.size = len(index_bytes)
        info.mode = 0o644
        tar.addfile(info, _BytesReader(index_bytes))
        tar.add(layout / "blobs", arcname="blobs")
    return path


class _BytesReader:
    """Minimal file object for tarfile.addfile."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def write_layer_tar(path: Path | str, *, size: int, seed: int = 0, name: str = "layer-0.bin") -> str:
    """Write an uncompressed rootfs tar with one random file (the input of `docker import`); return its sha256 digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest, _, _ = _write_stream(path.parent, _layer_tar_chunks(size, _layer_seed_key(seed, 0, size), name), gzip_level=None)
    tmp.replace(path)
    return digest


@dataclass(frozen=True)
class DockerArchiveInfo:
    """What `build_docker_archive` wrote; `image_id` is what `docker load` reports (the config digest)."""

    path: Path
    repo_tag: str
    image_id: str
    diff_ids: tuple[str, ...]


def build_docker_archive(path: Path | str, *, layers: Sequence[int], repo_tag: str, seed: int = 0) -> DockerArchiveInfo:
    """Write a `docker save`-format tarball (manifest.json, config, uncompressed layer tars) for `docker load`.

    Layer contents match `build_oci_layout` with the same seed (same diff_ids), so the image ID
    is deterministic; the digest after `docker push` is not (dockerd compresses with its own gzip).
    """
    path = Path(path)
    diff_ids: list[str] = []
    with tarfile.open(path, "w") as tar:
        for i, size in enumerate(layers):
            info = tarfile.TarInfo(f"layer-{i}/layer.tar")
            info.size = tar_size(size)
            info.mode = 0o644
            reader = _ChunkReader(_layer_tar_chunks(size, _layer_seed_key(seed, i, size), f"layer-{i}.bin"))
            tar.addfile(info, reader)  # type: ignore[arg-type,unused-ignore]  # a duck-typed file object
            diff_ids.append("sha256:" + reader.sha.hexdigest())
        config_bytes = canonical_json(image_config(diff_ids, seed=seed, layer_sizes=layers))
        image_id = sha256_digest(config_bytes)
        config_name = image_id.split(":", 1)[1] + ".json"
        manifest = [
            {"Config": config_name, "RepoTags": [repo_tag], "Layers": [f"layer-{i}/layer.tar" for i in range(len(layers))]}
        ]
        for name, data in ((config_name, config_bytes), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, _BytesReader(data))
    return DockerArchiveInfo(path, repo_tag, image_id, tuple(diff_ids))


class _ChunkReader:
    """File object over a chunk iterator that hashes what is read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        self.sha.update(out)
        return out
