"""The e2e harness proven against CNCF Distribution 2.8: every client helper pushes and pulls for real."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.e2e import harness
from tests.e2e.harness import (
    CommandError,
    Containerd,
    DistributionRegistry,
    DockerClient,
    DockerDaemon,
    build_docker_archive,
    build_oci_layout,
    manifest_descriptor,
    oras_pull_artifact,
    oras_push_artifact,
    skopeo_inspect_digest,
    write_layer_tar,
    write_oci_archive,
)

if TYPE_CHECKING:
    from oras.client import OrasClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


# --- image builders (no registry) ------------------------------------------------------------------


def test_oci_layout_is_valid_and_deterministic(tmp_path: Path) -> None:
    a = build_oci_layout(tmp_path / "a", layers=[3000, 70_000], tag="v1", seed=7)
    b = build_oci_layout(tmp_path / "b", layers=[3000, 70_000], tag="v1", seed=7)
    c = build_oci_layout(tmp_path / "a", layers=[3000, 5], tag="v2", seed=7)  # same layout, second image
    assert a.manifest_digest == b.manifest_digest and a.layer_digests == b.layer_digests
    assert c.layer_digests[0] == a.layer_digests[0] and c.layer_digests[1] != a.layer_digests[1]

    layout = json.loads((tmp_path / "a" / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert [(m["digest"], m["annotations"]["org.opencontainers.image.ref.name"]) for m in index["manifests"]] == [
        (a.manifest_digest, "v1"),
        (c.manifest_digest, "v2"),
    ]

    manifest = json.loads(a.blob_path(a.manifest_digest).read_bytes())
    assert manifest["mediaType"] == harness.MT_OCI_MANIFEST and manifest["config"]["digest"] == a.config_digest
    config = json.loads(a.blob_path(a.config_digest).read_bytes())
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    for blob in [a.manifest, a.config, *a.layers]:
        data = a.blob_path(blob.digest).read_bytes()
        assert harness.sha256_digest(data) == blob.digest and len(data) == blob.size
    for i, (layer, size) in enumerate(zip(a.layers, [3000, 70_000], strict=True)):
        raw = gzip.decompress(a.blob_path(layer.digest).read_bytes())
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == layer.diff_id == config["rootfs"]["diff_ids"][i]
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            members = tar.getmembers()
            assert [(m.name, m.size) for m in members] == [(f"layer-{i}.bin", size)]
            extracted = tar.extractfile(members[0])
            assert extracted is not None
            content = extracted.read()
        assert len(gzip.compress(content)) > size  # incompressible

    plain = build_oci_layout(tmp_path / "plain", layers=[1000], compression="none")
    assert plain.layers[0].media_type == harness.MT_OCI_LAYER_TAR
    assert plain.layers[0].digest == plain.layers[0].diff_id


def test_hosts_entry_adds_and_removes_its_line() -> None:
    name = "harness-check.wharf.test"
    before = harness.HOSTS_FILE.read_text()
    with harness.hosts_entry(name):
        assert socket.gethostbyname(name) == "127.0.0.1"
        with harness.hosts_entry(name):  # nested: a second line, removed by its own exit
            assert harness.HOSTS_FILE.read_text().count(name) == 2
        assert harness.HOSTS_FILE.read_text().count(name) == 1
    assert harness.HOSTS_FILE.read_text() == before


# --- skopeo -----------------------------------------------------------------------------------------------


def test_skopeo_copy_roundtrip_preserves_digests_big_layer(
    skopeo: Run, distribution_registry: DistributionRegistry, tmp_path: Path
) -> None:
    """The one big-layer test: 101 MiB layer there and back, byte for byte."""
    info = build_oci_layout(tmp_path / "oci", layers=[1024, 101 << 20], tag="v1", seed=1)
    ref = f"docker://{distribution_registry.host}/acme/big:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", info.oci_ref, ref)
    assert skopeo_inspect_digest(ref) == info.manifest_digest

    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'back'}:v1")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [info.manifest_digest]
    for blob in info.all_blobs():
        assert (tmp_path / "back" / "blobs" / "sha256" / blob.digest.split(":")[1]).stat().st_size == blob.size


def test_skopeo_with_basic_auth(skopeo: Run, distribution_registry_auth: DistributionRegistry, tmp_path: Path) -> None:
    info = build_oci_layout(tmp_path / "oci", layers=[2000], seed=2)
    user, password = distribution_registry_auth.creds
    ref = f"docker://{distribution_registry_auth.host}/acme/auth:v1"
    with pytest.raises(CommandError, match="(?i)unauthorized|authentication required"):
        skopeo("copy", "--dest-tls-verify=false", info.oci_ref, ref, timeout=60)
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", f"{user}:{password}", info.oci_ref, ref)
    assert skopeo_inspect_digest(ref, creds=f"{user}:{password}") == info.manifest_digest


def test_distribution_on_s3(skopeo: Run, distribution_registry_s3: DistributionRegistry, tmp_path: Path) -> None:
    registry = distribution_registry_s3
    info = build_oci_layout(tmp_path / "oci", layers=[300_000], seed=3)
    ref = f"docker://{registry.host}/acme/s3:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", info.oci_ref, ref)
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'back'}:v1")
    back = tmp_path / "back" / "blobs" / "sha256" / info.layers[0].digest.split(":")[1]
    assert back.read_bytes() == info.blob_path(info.layers[0].digest).read_bytes()

    with _session() as http:
        r = http.get(f"{registry.url}/v2/acme/s3/blobs/{info.layers[0].digest}", allow_redirects=False, timeout=30)
    if registry.redirect:
        assert r.status_code == 307 and r.headers["Location"].startswith(harness.S3Target.from_env().endpoint_url)
    else:
        assert r.status_code == 200 and harness.sha256_digest(r.content) == info.layers[0].digest


# --- docker -----------------------------------------------------------------------------------------------


def test_docker_import_push_pull(docker: DockerClient, distribution_registry: DistributionRegistry, tmp_path: Path) -> None:
    ref = f"{distribution_registry.host}/acme/imported:v1"
    write_layer_tar(tmp_path / "rootfs.tar", size=500_000, seed=4)
    image_id = docker.import_tar(tmp_path / "rootfs.tar", "wharf-e2e/imported:latest")
    docker.run("tag", "wharf-e2e/imported:latest", ref)
    pushed = docker.push(ref)
    assert skopeo_inspect_digest(f"docker://{ref}") == pushed

    docker.rmi(ref, "wharf-e2e/imported:latest")
    assert docker.pull(ref) == pushed
    assert docker.image_id(ref) == image_id
    assert f"{distribution_registry.host}/acme/imported@{pushed}" in docker.repo_digests(ref)
    docker.rmi(ref)


def test_docker_load_login_push_pull_on_host_alias(
    docker: DockerClient,
    docker_daemon: DockerDaemon,
    distribution_registry_auth: DistributionRegistry,
    host_alias: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """Host-based endpoint (acme.wharf.test:PORT via /etc/hosts) is plain HTTP for dockerd; logins stay per client."""
    host = f"{host_alias('acme.wharf.test')}:{distribution_registry_auth.port}"
    ref = f"{host}/app:v1"
    archive = build_docker_archive(tmp_path / "image.tar", layers=[4000, 200_000], repo_tag=ref, seed=5)
    assert "Loaded image: " + ref in docker.load(archive.path)
    assert docker.image_id(ref) == archive.image_id

    with pytest.raises(CommandError, match="no basic auth credentials"):
        docker.push(ref)
    user, password = distribution_registry_auth.creds
    with pytest.raises(CommandError):
        docker.login(host, user, "wrong-password")
    docker.login(host, user, password)
    pushed = docker.push(ref)

    other = docker_daemon.client(tmp_path / "other-config")  # same daemon, no login
    with pytest.raises(CommandError, match="(?i)no basic auth credentials|unauthorized"):
        other.pull(ref)

    docker.rmi(ref)
    assert docker.pull(ref) == pushed
    assert docker.image_id(ref) == archive.image_id
    docker.rmi(ref)


# --- containerd / ctr ---------------------------------------------------------------------------------------


def test_ctr_import_push_pull(containerd: Containerd, distribution_registry_auth: DistributionRegistry, tmp_path: Path) -> None:
    registry = distribution_registry_auth
    user, password = registry.creds
    name = f"{registry.host}/acme/ctr"
    info = build_oci_layout(tmp_path / "oci", layers=[1000, 400_000], tag="v1", seed=6)
    archive = write_oci_archive(info.layout, tmp_path / "image.tar", image_name=name)

    containerd.ctr("images", "import", "--no-unpack", str(archive))
    assert containerd.image_digest(f"{name}:v1") == info.manifest_digest
    containerd.ctr("images", "push", "--plain-http", "--user", f"{user}:{password}", f"{name}:v1")
    assert skopeo_inspect_digest(f"docker://{name}:v1", creds=f"{user}:{password}") == info.manifest_digest

    containerd.ctr("images", "rm", "--sync", f"{name}:v1")
    assert info.layer_digests[1] not in containerd.ctr("content", "ls", "--quiet").stdout
    with pytest.raises(CommandError):
        containerd.ctr("images", "pull", "--plain-http", f"{name}:v1", timeout=60)
    containerd.ctr("images", "pull", "--plain-http", "--user", f"{user}:{password}", f"{name}:v1")
    assert containerd.image_digest(f"{name}:v1") == info.manifest_digest
    assert info.layer_digests[1] in containerd.ctr("content", "ls", "--quiet").stdout
    containerd.ctr("images", "rm", "--sync", f"{name}:v1")


# --- oras ----------------------------------------------------------------------------------------------------


def test_oras_push_pull_artifact_with_subject(
    skopeo: Run,
    make_oras_client: Callable[..., OrasClient],
    distribution_registry_auth: DistributionRegistry,
    tmp_path: Path,
) -> None:
    registry = distribution_registry_auth
    user, password = registry.creds
    image = build_oci_layout(tmp_path / "oci", layers=[1000], seed=8)
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{user}:{password}",
        image.oci_ref,
        f"docker://{registry.host}/acme/art:v1",
    )
    subject = manifest_descriptor(registry.host, "acme/art", "v1", auth=(user, password))
    assert subject.digest == image.manifest_digest and subject.media_type == harness.MT_OCI_MANIFEST

    (tmp_path / "files").mkdir()
    sbom = tmp_path / "files" / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "components": []}))
    client = make_oras_client(registry.host, user, password)
    pushed = oras_push_artifact(
        client,
        f"{registry.host}/acme/art:sbom",
        [sbom],
        artifact_type="application/vnd.cyclonedx+json",
        subject=subject,
    )

    stored = manifest_descriptor(registry.host, "acme/art", pushed.digest, auth=(user, password))
    assert stored.data == pushed.data
    manifest = json.loads(stored.data)
    assert manifest["subject"] == {
        "mediaType": harness.MT_OCI_MANIFEST,
        "digest": image.manifest_digest,
        "size": image.manifest.size,
    }
    assert manifest["config"]["mediaType"] == "application/vnd.cyclonedx+json"

    files = oras_pull_artifact(client, f"{registry.host}/acme/art:sbom", tmp_path / "out")
    assert [f.name for f in files] == ["sbom.json"] and files[0].read_bytes() == sbom.read_bytes()

    with _session() as http:  # Distribution 2.8 predates the OCI 1.1 referrers API
        r = http.get(f"{registry.url}/v2/acme/art/referrers/{image.manifest_digest}", auth=(user, password), timeout=30)
    assert r.status_code == 404
