"""End-to-end harness: test images, real registry clients and daemons, a reference registry.

Plain functions and small classes with no pytest or Django dependency, so benchmarks can use
them too; `tests/e2e/conftest.py` wraps them in fixtures and turns `Unavailable` into a skip
(or a failure when `CI=true`). One module per concern, everything re-exported here:

- `process`: the client binaries, `run_command`, `ManagedProcess` (a daemon in its own process group).
- `images`: `build_oci_layout` (OCI image layout, deterministic from a seed), `write_oci_archive`
  (a tarred layout for `ctr images import`), `write_layer_tar` (a rootfs tarball for
  `docker import`), `build_docker_archive` (a `docker save` tarball for `docker load`).
- `clients`: `skopeo`, `oras_client` / `oras_push_artifact` / `oras_pull_artifact`, `manifest_descriptor`.
- `containerd`: `ctr` against a private `Containerd`. `docker`: a private `DockerDaemon` and its `DockerClient`.
- `hosts`: `hosts_entry`, a temporary `/etc/hosts` line, for host-based tenant endpoints.
- `s3`, `distribution`: `start_distribution`, CNCF Distribution 2.8 (`/usr/bin/docker-registry`) on a
  free port, with filesystem or S3 (`S3Target`) storage and optional htpasswd auth, as a yardstick.

Everything listens on 127.0.0.1 only. Every daemon started here runs in its own process group
that `stop()` signals as a whole (dockerd's own containerd, which dockerd puts in a group of its
own, is stopped by pid), and its temporary directory is deleted.
"""

from tests.e2e.harness.clients import (
    PushedManifest,
    manifest_descriptor,
    oras_client,
    oras_pull_artifact,
    oras_push_artifact,
    skopeo,
    skopeo_inspect_digest,
)
from tests.e2e.harness.containerd import Containerd, ctr
from tests.e2e.harness.distribution import DistributionRegistry, bcrypt_hash, start_distribution
from tests.e2e.harness.docker import INSECURE_REGISTRIES, DockerClient, DockerDaemon, digests_in
from tests.e2e.harness.hosts import HOSTS_FILE, hosts_entry
from tests.e2e.harness.images import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    EPOCH,
    MANIFEST_ACCEPT,
    MT_DOCKER_MANIFEST,
    MT_DOCKER_MANIFEST_LIST,
    MT_OCI_CONFIG,
    MT_OCI_EMPTY,
    MT_OCI_INDEX,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_TAR,
    MT_OCI_MANIFEST,
    OCI_LAYOUT_VERSION,
    Blob,
    DockerArchiveInfo,
    ImageInfo,
    IndexInfo,
    build_docker_archive,
    build_oci_index_layout,
    build_oci_layout,
    canonical_json,
    image_config,
    sha256_digest,
    tar_size,
    write_layer_tar,
    write_oci_archive,
)
from tests.e2e.harness.process import (
    CONTAINERD,
    CTR,
    DISTRIBUTION,
    DOCKER,
    DOCKERD,
    SKOPEO,
    CommandError,
    ManagedProcess,
    Unavailable,
    child_env,
    free_port,
    pid_alive,
    require_binary,
    run_command,
    wait_until,
)
from tests.e2e.harness.s3 import S3Target

__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "ANNOTATION_REF_NAME",
    "CONTAINERD",
    "CTR",
    "DISTRIBUTION",
    "DOCKER",
    "DOCKERD",
    "EPOCH",
    "HOSTS_FILE",
    "INSECURE_REGISTRIES",
    "MANIFEST_ACCEPT",
    "MT_DOCKER_MANIFEST",
    "MT_DOCKER_MANIFEST_LIST",
    "MT_OCI_CONFIG",
    "MT_OCI_EMPTY",
    "MT_OCI_INDEX",
    "MT_OCI_LAYER_GZIP",
    "MT_OCI_LAYER_TAR",
    "MT_OCI_MANIFEST",
    "OCI_LAYOUT_VERSION",
    "SKOPEO",
    "Blob",
    "CommandError",
    "Containerd",
    "DistributionRegistry",
    "DockerArchiveInfo",
    "DockerClient",
    "DockerDaemon",
    "ImageInfo",
    "IndexInfo",
    "ManagedProcess",
    "PushedManifest",
    "S3Target",
    "Unavailable",
    "bcrypt_hash",
    "build_docker_archive",
    "build_oci_index_layout",
    "build_oci_layout",
    "canonical_json",
    "child_env",
    "ctr",
    "digests_in",
    "free_port",
    "hosts_entry",
    "image_config",
    "manifest_descriptor",
    "oras_client",
    "oras_pull_artifact",
    "oras_push_artifact",
    "pid_alive",
    "require_binary",
    "run_command",
    "sha256_digest",
    "skopeo",
    "skopeo_inspect_digest",
    "start_distribution",
    "tar_size",
    "wait_until",
    "write_layer_tar",
    "write_oci_archive",
]
