"""End-to-end harness: test images, real registry clients and daemons, a reference registry.

Plain functions and small classes with no pytest or Django dependency, so benchmarks can use
them too; `tests/e2e/conftest.py` wraps them in fixtures and turns `Unavailable` into a skip
(or a failure when `CI=true`).

- Images: `build_oci_layout` (OCI image layout, deterministic from a seed), `write_oci_archive`
  (a tarred layout for `ctr images import`), `write_layer_tar` (a rootfs tarball for
  `docker import`), `build_docker_archive` (a `docker save` tarball for `docker load`).
- Clients: `skopeo`, `ctr` (against a private `Containerd`), a private `DockerDaemon` and its
  `DockerClient`, `oras_client` / `oras_push_artifact` / `oras_pull_artifact`.
- `hosts_entry`: a temporary `/etc/hosts` line, for host-based tenant endpoints.
- `start_distribution`: CNCF Distribution 2.8 (`/usr/bin/docker-registry`) on a free port, with
  filesystem or S3 storage and optional htpasswd auth, as a yardstick.

Everything listens on 127.0.0.1 only. Every daemon started here runs in its own process group
that `stop()` signals as a whole (dockerd's own containerd, which dockerd puts in a group of its
own, is stopped by pid), and its temporary directory is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    import oras.client
    import oras.oci

# --- binaries (Debian packages docker.io, containerd, skopeo, docker-registry) --------------------

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # the 20.10 CLI that matches dockerd; /usr/local/bin/docker may be a newer, daemonless one
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
SKOPEO = "/usr/bin/skopeo"
DISTRIBUTION = "/usr/bin/docker-registry"

# Extra `--insecure-registry` values for the test dockerd. dockerd always treats 127.0.0.0/8 as
# insecure and matches host names against that CIDR by resolving them on every push/pull (verified
# with dockerd 20.10: acme.wharf.test -> 127.0.0.1 via /etc/hosts is plain HTTP), so a name added
# with `hosts_entry` needs nothing here. dockerd rejects wildcards
# such as "*.wharf.test" ("invalid host"); list exact "name:port" values or CIDRs only.
INSECURE_REGISTRIES: tuple[str, ...] = ()

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
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class Unavailable(RuntimeError):
    """A binary or daemon the harness needs is missing or will not start on this machine."""


class CommandError(RuntimeError):
    """A client command failed (or timed out); the message carries its stdout and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, note: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = note or f"exit code {returncode}"
        super().__init__(f"{' '.join(self.argv)!r} failed ({status})\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}")


# --- small utilities ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(path: str) -> str:
    """`path` if it is an executable file, else raise `Unavailable` naming the Debian package."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    package = {
        DOCKERD: "docker.io",
        DOCKER: "docker.io",
        CONTAINERD: "containerd",
        CTR: "containerd",
        SKOPEO: "skopeo",
        DISTRIBUTION: "docker-registry",
    }.get(path, "?")
    raise Unavailable(f"{path} not found (Debian package {package}; `make system-deps` installs it)")


def child_env(extra: Mapping[str, str] | None = None, *, drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment without proxy variables (tests only talk to 127.0.0.1) and `drop_prefixes`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS and not k.startswith(tuple(drop_prefixes))}
    env.update(extra or {})
    return env


def run_command(
    argv: Sequence[str],
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout and captured text output; on failure raise `CommandError` with both streams."""
    try:
        proc = subprocess.run(  # noqa: PLW1510 - checked below, to raise with both streams
            list(argv),
            input=input,
            env=child_env(env),
            timeout=timeout,
            capture_output=True,
            text=True,
            errors="replace",
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise CommandError(argv, None, out, err, note=f"timed out after {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def wait_until(predicate: Callable[[], bool], what: str, timeout: float, process: ManagedProcess | None = None) -> None:
    """Poll `predicate` every 0.1 s; raise `Unavailable` with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.proc.poll() is not None:
            raise Unavailable(f"{what} exited with code {process.proc.returncode} while starting:\n{process.log_tail()}")
        time.sleep(0.1)
    tail = process.log_tail() if process is not None else ""
    raise Unavailable(f"{what} not ready within {timeout:.0f}s\n{tail}")


@dataclass
class ManagedProcess:
    """A daemon started by the harness in its own process group, logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        drop_env_prefixes: Sequence[str] = (),
    ) -> ManagedProcess:
        """Start `argv` in a new session (so its children can be signalled together), output to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(env, drop_prefixes=drop_env_prefixes),
                start_new_session=True,
            )
        return cls(name, proc, log)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log file."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # whatever is left in the group, even after the leader exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


# --- images -----------------------------------------------------------------------------------------


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


# --- /etc/hosts -------------------------------------------------------------------------------------

HOSTS_FILE = Path("/etc/hosts")
_HOSTS_MARK = "# wharf-e2e pid="


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hosts_rewrite(f: TextIO, keep: Callable[[str], bool]) -> None:
    """Rewrite the (r+, flocked) hosts file in place keeping only the lines `keep` accepts."""
    f.seek(0)
    lines = f.read().splitlines(keepends=True)
    kept = [line for line in lines if keep(line)]
    if kept != lines:
        f.seek(0)
        f.write("".join(kept))
        f.truncate()
        f.flush()


def _stale_hosts_line(line: str) -> bool:
    m = re.search(re.escape(_HOSTS_MARK) + r"(\d+)", line)
    return m is not None and not _pid_alive(int(m.group(1)))


@contextlib.contextmanager
def hosts_entry(name: str, ip: str = "127.0.0.1", *, hosts_file: Path = HOSTS_FILE) -> Iterator[str]:
    """Make `name` resolve to `ip` through /etc/hosts while the block runs; yields `name`.

    Adds one line tagged with this process's pid and a token, and removes exactly that line on
    exit, under an flock on the file (concurrent test runs each add and remove their own line;
    lines left by dead processes are swept). If the name already resolves to `ip` via an untagged
    line, nothing is written. Edits in place (no rename) so a bind-mounted /etc/hosts works.
    The harness's dockerd uses glibc's resolver (see `DockerDaemon`), so it sees the entry at once.
    """
    if not re.fullmatch(r"[A-Za-z0-9.-]+", name):
        raise ValueError(f"not a host name: {name!r}")
    token = secrets.token_hex(4)
    line = f"{ip} {name} {_HOSTS_MARK}{os.getpid()} {token}\n"
    try:
        f = hosts_file.open("r+")
    except OSError as e:
        raise Unavailable(f"cannot edit {hosts_file}: {e}") from e
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            _hosts_rewrite(f, lambda ln: not _stale_hosts_line(ln))
            f.seek(0)
            present = any(
                ln.split("#", 1)[0].split()[:1] == [ip] and name in ln.split("#", 1)[0].split()[1:] and _HOSTS_MARK not in ln
                for ln in f.read().splitlines()
            )
            if not present:
                f.seek(0, os.SEEK_END)
                if f.tell() and not _ends_with_newline(hosts_file):
                    f.write("\n")
                f.write(line)
                f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    try:
        yield name
    finally:
        if not present:
            with hosts_file.open("r+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    _hosts_rewrite(f, lambda ln: ln.rstrip("\n") != line.rstrip("\n"))
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


# --- skopeo -----------------------------------------------------------------------------------------


def skopeo(
    *args: str, timeout: float = 600, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run skopeo (with --insecure-policy: no signature policy file needed) and return the completed process.

    Known-good copy to a plain-HTTP registry, byte-for-byte:
        skopeo copy --preserve-digests --dest-tls-verify=false [--dest-creds u:p] oci:DIR:tag docker://127.0.0.1:PORT/acme/app:tag
    and back: skopeo copy --preserve-digests --src-tls-verify=false docker://... oci:DIR2:tag
    """
    require_binary(SKOPEO)
    return run_command([SKOPEO, "--insecure-policy", *args], timeout=timeout, check=check, env=env)


def skopeo_inspect_digest(ref: str, *, creds: str | None = None) -> str:
    """The manifest digest of `docker://...` ref as the registry serves it (plain HTTP allowed)."""
    args = ["inspect", "--raw", "--tls-verify=false", *(["--creds", creds] if creds else []), ref]
    return sha256_digest(skopeo(*args).stdout.encode())


# --- containerd / ctr ---------------------------------------------------------------------------------


def ctr(
    *args: str, address: Path | str, namespace: str = "wharf-e2e", timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `ctr -a ADDRESS -n NAMESPACE ARGS...` with the native snapshotter (no overlay mounts needed)."""
    require_binary(CTR)
    return run_command(
        [CTR, "-a", str(address), "-n", namespace, *args], timeout=timeout, check=check, env={"CONTAINERD_SNAPSHOTTER": "native"}
    )


@dataclass
class Containerd:
    """A private containerd (own root, state and socket; no systemd, no CRI) and `ctr` against it.

    Working sequence (containerd/ctr 1.6), verified against Distribution 2.8 (`ctr -a SOCK -n NS`
    prefix and CONTAINERD_SNAPSHOTTER=native added by `ctr()`):
        write_oci_archive(layout, "img.tar", image_name="127.0.0.1:PORT/acme/app")
        ctr images import --no-unpack img.tar          # named by io.containerd.image.name
        ctr images push --plain-http [--user u:p] 127.0.0.1:PORT/acme/app:v1
        ctr images rm --sync 127.0.0.1:PORT/acme/app:v1
        ctr images pull --plain-http [--user u:p] 127.0.0.1:PORT/acme/app:v1
        ctr images ls                                  # DIGEST column: the manifest digest
    Push uploads each missing blob as HEAD blob -> POST uploads/ -> PUT ?digest= (monolithic, no
    PATCH), then HEAD + PUT manifest. `images rm --sync` waits for garbage collection, so the
    blobs really leave the content store and the next pull downloads them (without --sync, or
    while another image shares them, pull fetches only what is missing). Without
    io.containerd.image.name, import names an OCI archive "import-<date>" unless --base-name is
    given. To push under another name: `ctr images tag SRC DST`, or `ctr images push DST SRC`.
    `pull` unpacks into the native snapshotter (a file copy; no overlay mount needed).
    """

    root: Path
    process: ManagedProcess
    namespace: str = "wharf-e2e"

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @classmethod
    def start(cls, root: Path, *, timeout: float = 30) -> Containerd:
        """Start containerd with a generated config under `root` and wait until `ctr version` answers."""
        require_binary(CONTAINERD)
        require_binary(CTR)
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{root}/root"\n'
            f'state = "{root}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
            '"io.containerd.snapshotter.v1.devmapper"]\n'
            f'[grpc]\n  address = "{root}/containerd.sock"\n'
            f'[ttrpc]\n  address = "{root}/containerd.sock.ttrpc"\n'
            '[debug]\n  address = ""\n  level = "warn"\n'
            '[metrics]\n  address = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root}/opt"\n'
        )
        process = ManagedProcess.start("containerd", [CONTAINERD, "--config", str(config)], root / "containerd.log")
        self = cls(root, process)

        def answers() -> bool:
            return self.socket.exists() and self.ctr("version", check=False, timeout=10).returncode == 0

        try:
            wait_until(answers, "containerd", timeout, process)
        except BaseException:
            self.stop()
            raise
        return self

    def ctr(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` against this containerd, in its namespace."""
        return ctr(*args, address=self.socket, namespace=self.namespace, timeout=timeout, check=check)

    def image_digest(self, ref: str) -> str:
        """The manifest digest containerd records for a local image name."""
        out = self.ctr("images", "ls", "--quiet").stdout.split()
        if ref not in out:
            raise KeyError(ref)
        for line in self.ctr("images", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == ref:
                return next(p for p in parts if p.startswith("sha256:"))
        raise KeyError(ref)

    def stop(self) -> None:
        """Stop containerd and delete its directories."""
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --- docker ---------------------------------------------------------------------------------------------


_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass
class DockerClient:
    """The docker CLI (/usr/bin/docker, 20.10 like the daemon) bound to one daemon and one DOCKER_CONFIG (its own logins).

    Verified sequences against Distribution 2.8 (registry on 127.0.0.1 or a name -> 127.0.0.1):
        docker import ROOTFS.tar wharf-e2e/x:latest && docker tag wharf-e2e/x:latest HOST/acme/app:v1
        docker load -i ARCHIVE.tar                       # build_docker_archive; image ID = config digest
        docker login HOST -u USER --password-stdin       # needs no daemon-side state; kept in DOCKER_CONFIG
        docker push HOST/acme/app:v1                     # prints "v1: digest: sha256:... size: N"
        docker rmi HOST/acme/app:v1 && docker pull HOST/acme/app:v1   # prints "Digest: sha256:..."
    Docker 20.10 cannot `docker load` an OCI layout/archive; push OCI layouts with skopeo instead.
    It pulls the OCI manifests skopeo pushes (gzip level 0 layers included).
    """

    daemon: DockerDaemon
    config_dir: Path

    def env(self) -> dict[str, str]:
        """DOCKER_HOST and DOCKER_CONFIG for this client."""
        return {"DOCKER_HOST": self.daemon.host, "DOCKER_CONFIG": str(self.config_dir)}

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/docker ARGS against the daemon."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        return run_command([DOCKER, *args], input=input, env=self.env(), timeout=timeout, check=check)

    def login(self, host: str, user: str, password: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`docker login HOST -u USER --password-stdin`."""
        return self.run("login", host, "-u", user, "--password-stdin", input=password + "\n", check=check)

    def push(self, ref: str) -> str:
        """`docker push REF`; returns the manifest digest docker printed."""
        out = self.run("push", ref).stdout
        m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", out)
        if not m:
            raise AssertionError(f"no digest in docker push output:\n{out}")
        return m.group(1)

    def pull(self, ref: str) -> str:
        """`docker pull REF`; returns the manifest digest docker printed."""
        out = self.run("pull", ref).stdout
        m = re.search(r"Digest: (sha256:[0-9a-f]{64})", out)
        if not m:
            raise AssertionError(f"no digest in docker pull output:\n{out}")
        return m.group(1)

    def import_tar(self, tar: Path | str, ref: str) -> str:
        """`docker import TAR REF` (an image from a rootfs tarball, no container); returns the image ID."""
        return self.run("import", str(tar), ref).stdout.strip()

    def load(self, archive: Path | str) -> str:
        """`docker load -i ARCHIVE`; returns docker's output."""
        return self.run("load", "-i", str(archive)).stdout

    def image_id(self, ref: str) -> str:
        """The local image ID (config digest)."""
        return self.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def repo_digests(self, ref: str) -> list[str]:
        """`RepoDigests` of a local image ("repo@sha256:...")."""
        return list(json.loads(self.run("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout))

    def rmi(self, *refs: str) -> None:
        """Remove local images (ignores ones that do not exist)."""
        self.run("rmi", "--force", *refs, check=False)


@dataclass
class DockerDaemon:
    """A private dockerd (vfs storage, own data/exec root and unix socket) started as environment.md says.

    dockerd starts its own containerd (in a process group of its own, pid in
    exec/containerd/containerd.pid); `stop()` ends both and undoes dockerd's bind mount of the
    data root. dockerd runs with GODEBUG=netdns=cgo: Go's own resolver caches /etc/hosts for 5 s,
    so a name added by `hosts_entry` would be missed ("no such host") for up to 5 s; glibc's
    resolver reads the file on every lookup.
    `run()` uses a DOCKER_CONFIG under the daemon's root; use `client(dir)` for per-test logins.
    """

    root: Path
    process: ManagedProcess
    insecure_registries: tuple[str, ...] = ()

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @classmethod
    def start(cls, root: Path, *, insecure_registries: Sequence[str] = INSECURE_REGISTRIES, timeout: float = 60) -> DockerDaemon:
        """Start dockerd under `root` and wait until `docker version` reaches it."""
        require_binary(DOCKERD)
        require_binary(DOCKER)
        root.mkdir(parents=True, exist_ok=True)
        (root / "daemon.json").write_text("{}")  # never read the machine's /etc/docker/daemon.json
        argv = [
            DOCKERD,
            "--config-file",
            str(root / "daemon.json"),
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver=vfs",
            f"--data-root={root}/data",
            f"--exec-root={root}/exec",
            f"--pidfile={root}/dockerd.pid",
            "-H",
            f"unix://{root}/docker.sock",
            "--log-level=warn",
            *(f"--insecure-registry={r}" for r in insecure_registries),
        ]
        process = ManagedProcess.start("dockerd", argv, root / "dockerd.log", env={"GODEBUG": "netdns=cgo"})
        self = cls(root, process, tuple(insecure_registries))
        client = self.client(root / "docker-config")

        def answers() -> bool:
            return self.socket.exists() and client.run("version", check=False, timeout=10).returncode == 0

        try:
            wait_until(answers, "dockerd", timeout, process)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, config_dir: Path) -> DockerClient:
        """A CLI view of this daemon with its own DOCKER_CONFIG (so logins do not leak between tests)."""
        return DockerClient(self, config_dir)

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/docker ARGS with DOCKER_HOST set and the daemon's private DOCKER_CONFIG."""
        return self.client(self.root / "docker-config").run(*args, input=input, check=check, timeout=timeout)

    def stop(self) -> None:
        """Stop dockerd (and its containerd), unmount what it left mounted and delete its directories."""
        containerd_pid = _read_pid(self.root / "exec" / "containerd" / "containerd.pid")
        self.process.stop(timeout=30)
        if containerd_pid and str(self.root) in _cmdline(containerd_pid):  # dockerd was killed before stopping it
            _terminate_pid(containerd_pid)
        for mount_point in _mounts_under(self.root):
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _terminate_pid(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1]
    return sorted({p for p in points if p == prefix or p.startswith(prefix + "/")}, key=len, reverse=True)


# --- oras ------------------------------------------------------------------------------------------------


def oras_client(host: str, user: str | None = None, secret: str | None = None) -> oras.client.OrasClient:
    """An `oras.client.OrasClient` for a plain-HTTP registry at `host` ("127.0.0.1:PORT"), basic auth if given.

    The client's requests session ignores proxy variables. Note: oras-py retries a request that
    fails with HTTP 500 or a connection error up to 5 times, sleeping 3 s, 5 s, 11 s, 29 s, 83 s.
    """
    try:
        import oras.client
    except ImportError as e:  # pragma: no cover - installed with the test extras
        raise Unavailable("the oras package is not installed (pip install -e '.[test]')") from e
    if user is not None:
        client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
        client.auth.set_basic_auth(user, secret or "")
    else:
        client = oras.client.OrasClient(hostname=host, insecure=True)
    client.session.trust_env = False
    return client


@dataclass(frozen=True)
class PushedManifest:
    """A manifest as pushed: its digest and size computed from the exact bytes sent."""

    digest: str
    size: int
    media_type: str
    data: bytes

    def subject(self) -> oras.oci.Subject:
        """This manifest as an `oras.oci.Subject` (the referrer's `subject` field)."""
        import oras.oci

        return oras.oci.Subject(mediaType=self.media_type, digest=self.digest, size=self.size)


def oras_push_artifact(
    client: oras.client.OrasClient,
    target: str,
    files: Sequence[Path | str],
    *,
    artifact_type: str = "application/vnd.wharf.test.artifact",
    file_media_type: str = "application/vnd.wharf.test.file",
    subject: oras.oci.Subject | PushedManifest | None = None,
    annotations: Mapping[str, str] | None = None,
) -> PushedManifest:
    """Push `files` as an OCI artifact to `target` ("host/repo:tag"), optionally with an OCI 1.1 `subject`.

    oras-py (0.2.x) supports `subject=` natively (it writes `manifest["subject"]`), so no raw-HTTP
    fallback is needed. Do not use `oras.oci.Subject.from_manifest`: it digests re-serialized JSON,
    not the registry's bytes; use `PushedManifest.subject()` or `manifest_descriptor()` instead.
    The artifact type is carried as the config media type (oras-py writes no `artifactType`
    field; OCI 1.1 registries derive the type from config.mediaType then).
    """
    if isinstance(subject, PushedManifest):
        subject = subject.subject()
    with tempfile.TemporaryDirectory(prefix="wharf-oras-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text("{}")
        response = client.push(
            target=target,
            files=[f"{Path(f).resolve()}:{file_media_type}" for f in files],
            manifest_config=f"{config}:{artifact_type}",
            manifest_annotations=dict(annotations or {}),
            subject=subject,  # type: ignore[arg-type,unused-ignore]  # typed `str` in oras-py, used as Subject
            disable_path_validation=True,
            quiet=True,
        )
    body = response.request.body
    data = body.encode() if isinstance(body, str) else bytes(body or b"")
    digest = sha256_digest(data)
    served = response.headers.get("Docker-Content-Digest")
    if served and served != digest:
        raise AssertionError(f"registry says {served} for a manifest whose bytes digest to {digest}")
    return PushedManifest(digest, len(data), MT_OCI_MANIFEST, data)


def oras_pull_artifact(client: oras.client.OrasClient, target: str, outdir: Path | str) -> list[Path]:
    """Pull an artifact's files into `outdir`; returns their paths."""
    return [Path(p) for p in client.pull(target=target, outdir=str(outdir))]


def manifest_descriptor(host: str, repo: str, reference: str, *, auth: tuple[str, str] | None = None) -> PushedManifest:
    """GET a manifest over plain HTTP and describe it by its exact bytes (to build a `subject`)."""
    import requests

    with requests.Session() as session:
        session.trust_env = False
        url = f"http://{host}/v2/{repo}/manifests/{reference}"
        r = session.get(url, headers={"Accept": MANIFEST_ACCEPT}, auth=auth, timeout=30)
    r.raise_for_status()
    media_type = r.headers.get("Content-Type", "").split(";")[0].strip() or json.loads(r.content).get(
        "mediaType", MT_OCI_MANIFEST
    )
    return PushedManifest(sha256_digest(r.content), len(r.content), media_type, r.content)


# --- CNCF Distribution (reference registry) ------------------------------------------------------------


@dataclass(frozen=True)
class S3Target:
    """Where the S3 storage driver writes (the env vars tests/conftest.py exports)."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Target:
        """From AWS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_STORAGE_BUCKET_NAME[, AWS_S3_REGION_NAME]."""
        env = os.environ if env is None else env
        missing = [
            k
            for k in ("AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_STORAGE_BUCKET_NAME")
            if not env.get(k)
        ]
        if missing:
            raise Unavailable(f"S3 for Distribution needs {', '.join(missing)}")
        return cls(
            env["AWS_S3_ENDPOINT_URL"],
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            env["AWS_STORAGE_BUCKET_NAME"],
            env.get("AWS_S3_REGION_NAME") or "us-east-1",
        )


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file (Distribution accepts bcrypt only): `bcrypt` if installed, else libc crypt."""
    try:
        import bcrypt  # type: ignore[import-not-found,unused-ignore]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode())
    except ImportError:
        pass
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # removed in Python 3.13
        except ImportError as e:
            raise Unavailable("no bcrypt implementation for htpasswd (pip install bcrypt)") from e
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
    if not hashed or not hashed.startswith("$2"):
        raise Unavailable("libc crypt has no bcrypt; pip install bcrypt")
    return hashed


@dataclass
class DistributionRegistry:
    """A running CNCF Distribution registry on 127.0.0.1 (plain HTTP)."""

    root: Path
    port: int
    process: ManagedProcess
    storage: Literal["filesystem", "s3"]
    redirect: bool
    users: dict[str, str] = field(default_factory=dict)
    s3_prefix: str = ""

    @property
    def host(self) -> str:
        """ "127.0.0.1:PORT" (what goes into image references)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> tuple[str, str]:
        """(user, password) of the first htpasswd user; ValueError without auth."""
        if not self.users:
            raise ValueError("this registry runs without auth")
        return next(iter(self.users.items()))

    @property
    def creds_arg(self) -> str:
        """ "user:password" (skopeo --creds, ctr --user)."""
        return ":".join(self.creds)

    def stop(self) -> None:
        """Stop the registry and delete its directory (S3 objects under its prefix are left to the bucket's owner)."""
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_distribution(
    root: Path,
    *,
    storage: Literal["filesystem", "s3"] = "filesystem",
    s3: S3Target | None = None,
    redirect: bool = False,
    users: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
) -> DistributionRegistry:
    """Start /usr/bin/docker-registry (Distribution 2.8) on 127.0.0.1 with a generated config.

    storage="filesystem" keeps blobs under `root`; storage="s3" uses the S3 driver against `s3`
    (default: `S3Target.from_env()`), path-style, under a fresh root directory in the bucket.
    `redirect` is the driver's blob-GET redirect (`storage.redirect.disable: not redirect`):
    clients then fetch blobs from presigned S3 URLs. `users` turns on htpasswd basic auth.
    Upload purging is off (no background listings). The config is JSON, which is YAML too.
    """
    require_binary(DISTRIBUTION)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    s3_prefix = ""
    storage_cfg: dict[str, object] = {
        "delete": {"enabled": True},
        "redirect": {"disable": not redirect},
        "maintenance": {"uploadpurging": {"enabled": False}},
        "cache": {"blobdescriptor": "inmemory"},
    }
    if storage == "filesystem":
        storage_cfg["filesystem"] = {"rootdirectory": str(root / "data")}
    else:
        s3 = s3 or S3Target.from_env()
        s3_prefix = f"/distribution-{secrets.token_hex(4)}"
        storage_cfg["s3"] = {
            "accesskey": s3.access_key,
            "secretkey": s3.secret_key,
            "region": s3.region,
            "regionendpoint": s3.endpoint_url,  # a custom endpoint also turns on path-style addressing
            "bucket": s3.bucket,
            "rootdirectory": s3_prefix,
            "secure": s3.endpoint_url.startswith("https"),
            "v4auth": True,
            "encrypt": False,
        }
    config: dict[str, object] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": storage_cfg,
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if users:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
        config["auth"] = {"htpasswd": {"realm": "wharf-e2e", "path": str(htpasswd)}}
    config_path = root / "config.yml"
    config_path.write_text(json.dumps(config, indent=1))
    # No AWS_* variables: the config says everything, and the AWS SDK in Distribution 2.8 panics
    # on AWS_CA_BUNDLE ("unable to load custom CA bundle, HTTPClient's transport unsupported type").
    process = ManagedProcess.start(
        "docker-registry", [DISTRIBUTION, "serve", str(config_path)], root / "registry.log", drop_env_prefixes=("AWS_",)
    )
    registry = DistributionRegistry(root, port, process, storage, redirect, dict(users or {}), s3_prefix)

    def answers() -> bool:
        try:
            _NO_PROXY_OPENER.open(f"{registry.url}/v2/", timeout=1)
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False
        return True

    try:
        wait_until(answers, "docker-registry", timeout, process)
    except BaseException:
        registry.stop()
        raise
    return registry


def digests_in(text: str) -> list[str]:
    """Every sha256 digest mentioned in `text`, in order."""
    return _DIGEST_RE.findall(text)
