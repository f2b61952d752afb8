"""Metering accuracy end to end: real clients (skopeo, docker) push and pull a known set of images through a live Wharf.

In both download modes (blobs streamed through Wharf, or redirected to presigned bucket URLs), the
pulls, egress and storage the billing meter records equal what the images' manifests and blob sizes
say they must be (decision 0041). A client that disconnects mid-blob is charged for what was sent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from accounts.models import Tenant
from billing.metering import hour_of, usage_storage_sample
from billing.models import UsageRecord
from billing.models.usage import TENANT_TOTAL
from billing.usage_selectors import usage_period_get
from gateway.registry.models import Manifest
from gateway.registry.services.stream import events_flush
from tests.e2e.harness import DockerClient, build_oci_index_layout, build_oci_layout, sha256_digest, write_layer_tar
from tests.e2e.wharf import WharfServer
from tests.helpers import basic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
Run = Callable[..., subprocess.CompletedProcess[str]]
MiB = 1024 * 1024


def _flush_all() -> None:
    while events_flush() > 0:
        pass


def _docker_image(tenant, repository: str) -> tuple[int, int]:
    """The manifest size and the blob bytes (config and layers) of what `docker push` stored, read from its manifest."""
    manifest = Manifest.objects.get(tenant=tenant, repository__name=repository)
    doc = json.loads(bytes(manifest.payload))
    return manifest.size, doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])


def _traffic(tenant, since: datetime) -> tuple[int, int, int]:
    usage = usage_period_get(tenant=tenant, start=hour_of(since), end=hour_of(datetime.now(UTC)) + timedelta(hours=1))
    return usage["pulls"], usage["egress_proxied_bytes"], usage["egress_redirect_bytes"]


@pytest.mark.parametrize("mode", ["proxied", "redirect"])
def test_pulls_egress_and_storage_equal_what_the_images_say(
    mode: str, skopeo: Run, docker: DockerClient, wharf: WharfServer, wharf_tenant, tmp_path: Path
) -> None:
    tenant, user, token = wharf_tenant
    Tenant.objects.filter(pk=tenant.pk).update(redirect_blob_downloads=mode == "redirect")  # before the server sees it
    base = f"{wharf.host}/{tenant.slug}"
    seed = 41 if mode == "proxied" else 51  # layers no other image of the session daemon holds: docker fetches them all
    single = build_oci_layout(tmp_path / "single", layers=[400_000, 3000], seed=seed)
    multi = build_oci_index_layout(
        tmp_path / "multi", platforms={"linux/amd64": [250_000, 2000], "linux/arm64": [150_000]}, seed=seed + 1
    )
    write_layer_tar(tmp_path / "rootfs.tar", size=300_000, seed=seed + 2)
    docker.import_tar(tmp_path / "rootfs.tar", f"{base}/docker:v1")
    try:
        _push_pull_and_check(mode, skopeo, docker, wharf, tenant, user, token, tmp_path, single, multi)
    finally:
        docker.rmi(f"{base}/single:v1", f"{base}/multi:v1", f"{base}/docker:v1")


def _push_pull_and_check(mode, skopeo, docker, wharf, tenant, user, token, tmp_path, single, multi) -> None:
    creds, base = f"{user}:{token}", f"{wharf.host}/{tenant.slug}"
    push = ("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds)
    pull = ("copy", "--src-tls-verify=false", "--src-creds", creds)
    amd, arm = multi.images["linux/amd64"], multi.images["linux/arm64"]
    skopeo(*push, single.oci_ref, f"docker://{base}/single:v1")
    skopeo(*push, "--all", multi.oci_ref, f"docker://{base}/multi:v1")
    docker.login(wharf.host, user, token)
    docker.push(f"{base}/docker:v1")
    docker_manifest, docker_blobs = _docker_image(tenant, "docker")
    _flush_all()

    # Storage: every blob once, every manifest (the index and both platforms' included).
    blobs = {b.digest: b.size for image in (single, amd, arm) for b in image.all_blobs()}
    manifests = single.manifest.size + multi.index.size + amd.manifest.size + arm.manifest.size + docker_manifest
    hour = hour_of(datetime.now(UTC))
    assert usage_storage_sample(tenant=tenant, hour=hour)
    total = UsageRecord.objects.get(tenant=tenant, repository=TENANT_TOTAL, hour=hour)
    assert total.storage_byte_hours == sum(blobs.values()) + docker_blobs + manifests
    assert UsageRecord.objects.get(tenant=tenant, repository="multi", hour=hour).storage_byte_hours == (
        multi.index.size + sum(i.manifest.size + sum(b.size for b in i.all_blobs()) for i in (amd, arm))
    )
    assert not UsageRecord.objects.filter(tenant=tenant, pulls__gt=0).exists()  # pushing is no pull

    started = datetime.now(UTC)
    docker.rmi(f"{base}/docker:v1")
    assert docker.pull(f"{base}/single:v1") == single.manifest_digest
    assert docker.pull(f"{base}/multi:v1") == multi.index.digest  # the index, then linux/amd64 only
    docker.pull(f"{base}/docker:v1")
    skopeo(*pull, "--all", f"docker://{base}/multi:v1", f"oci:{tmp_path / 'back-multi'}:v1")
    skopeo(*pull, f"docker://{base}/single:v1", f"oci:{tmp_path / 'back-single'}:v1")
    _flush_all()

    def blobs_of(image) -> int:
        return sum(b.size for b in image.all_blobs())

    # docker: single (1 pull), multi (the index, then linux/amd64: 1 pull), docker (1 pull).
    docker_manifests = single.manifest.size + multi.index.size + amd.manifest.size + docker_manifest
    docker_blob_bytes = blobs_of(single) + blobs_of(amd) + docker_blobs
    # skopeo: multi --all (the index, then both platforms: 2 pulls), single (1 pull).
    skopeo_manifests = multi.index.size + amd.manifest.size + arm.manifest.size + single.manifest.size
    skopeo_blob_bytes = blobs_of(amd) + blobs_of(arm) + blobs_of(single)
    manifest_bytes, blob_bytes = docker_manifests + skopeo_manifests, docker_blob_bytes + skopeo_blob_bytes
    if mode == "proxied":
        assert _traffic(tenant, started) == (6, manifest_bytes + blob_bytes, 0)
    else:
        assert _traffic(tenant, started) == (6, manifest_bytes, blob_bytes)
    per_repository = {
        r["repository"]: r["pulls"]
        for r in usage_period_get(tenant=tenant, start=hour_of(started), end=hour_of(datetime.now(UTC)) + timedelta(hours=1))[
            "repositories"
        ]
    }
    assert per_repository == {"single": 2, "multi": 3, "docker": 1}
    for image in (amd, arm):  # what skopeo fetched is what was pushed
        for blob in image.all_blobs():
            assert (
                sha256_digest((tmp_path / "back-multi" / "blobs" / "sha256" / blob.digest.split(":")[1]).read_bytes())
                == blob.digest
            )


def test_a_client_that_disconnects_mid_blob_is_charged_for_the_bytes_sent(wharf: WharfServer, wharf_tenant) -> None:
    tenant, user, token = wharf_tenant
    data = bytes(range(256)) * (96 * MiB // 256)  # far more than the sockets' buffers hold
    digest = sha256_digest(data)
    http = requests.Session()
    http.trust_env = False
    r = http.post(f"{wharf.url}/v2/{tenant.slug}/big/blobs/uploads/?digest={digest}", data=data, auth=(user, token), timeout=120)
    assert r.status_code == 201, r.text
    _flush_all()
    since = datetime.now(UTC)
    received = 0
    with socket.create_connection((wharf.host.split(":")[0], wharf.port), timeout=30) as sock:
        request = (
            f"GET /v2/{tenant.slug}/big/blobs/{digest} HTTP/1.1\r\nHost: {wharf.host}\r\n"
            f"Authorization: {basic(user, token)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        while received < 256 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "the server closed first"
            received += len(chunk)
    # The server finds the client gone on a later write; the pull is recorded then, with what left.
    sent = _wait_for_egress(tenant, above=0)
    assert received - 4096 < sent < len(data)  # the response headers are part of `received`
    assert _traffic(tenant, since)[0::2] == (0, 0)  # a blob is no pull; nothing redirected
    # A complete download afterwards is charged in full.
    r = http.get(f"{wharf.url}/v2/{tenant.slug}/big/blobs/{digest}", auth=(user, token), timeout=120)
    assert r.status_code == 200 and len(r.content) == len(data)
    assert _wait_for_egress(tenant, above=sent) == sent + len(data)


def _wait_for_egress(tenant, *, above: int) -> int:
    """The tenant's proxied egress once it is more than `above` (events flushed meanwhile); fails after a deadline."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _flush_all()
        total = sum(UsageRecord.objects.filter(tenant=tenant).values_list("egress_proxied_bytes", flat=True))
        if total > above:
            return total
        time.sleep(0.2)
    raise AssertionError(f"no egress above {above} recorded within the deadline")
