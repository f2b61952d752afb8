"""Real registry clients against a live Wharf: skopeo, docker (CLI + daemon), containerd's ctr, oras."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from gateway.registry.models import Blob, BlobUpload, Manifest
from tests.e2e import harness
from tests.e2e.harness import (
    CommandError,
    Containerd,
    DockerClient,
    build_oci_layout,
    manifest_descriptor,
    oras_pull_artifact,
    oras_push_artifact,
    skopeo_inspect_digest,
    write_layer_tar,
    write_oci_archive,
)
from tests.e2e.wharf import WharfServer, start_wharf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
Run = Callable[..., subprocess.CompletedProcess[str]]
MiB = 1024 * 1024


def _http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_skopeo_push_pull_big_and_many_small_layers(skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    creds = f"{user}:{token}"
    info = build_oci_layout(tmp_path / "oci", layers=[101 * MiB] + [20_000 + i for i in range(24)], tag="v1", seed=11)
    ref = f"docker://{wharf.host}/{tenant.slug}/big:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds, info.oci_ref, ref)
    assert skopeo_inspect_digest(ref, creds=creds) == info.manifest_digest
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds, ref, f"oci:{tmp_path / 'back'}:v1")
    for blob in info.all_blobs():
        back = tmp_path / "back" / "blobs" / "sha256" / blob.digest.split(":")[1]
        assert harness.sha256_digest(back.read_bytes()) == blob.digest
    big = Blob.objects.get(tenant=tenant, digest=info.layers[0].digest)
    assert big.size == info.layers[0].size


def test_skopeo_without_credentials_is_refused(skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, _, _ = wharf_tenant
    info = build_oci_layout(tmp_path / "oci", layers=[1000], seed=12)
    with pytest.raises(CommandError, match="(?i)unauthorized|authentication required|denied"):
        skopeo("copy", "--dest-tls-verify=false", info.oci_ref, f"docker://{wharf.host}/{tenant.slug}/app:v1", timeout=60)
    assert not Manifest.objects.filter(tenant=tenant).exists()


def test_docker_login_push_pull(docker: DockerClient, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    ref = f"{wharf.host}/{tenant.slug}/imported:v1"
    write_layer_tar(tmp_path / "rootfs.tar", size=3 * MiB, seed=13)
    image_id = docker.import_tar(tmp_path / "rootfs.tar", "wharf-e2e/imported:latest")
    docker.run("tag", "wharf-e2e/imported:latest", ref)
    with pytest.raises(CommandError, match="(?i)unauthorized|denied|authentication"):
        docker.login(wharf.host, user, "wrong-password")
    docker.login(wharf.host, user, token)
    pushed = docker.push(ref)
    assert skopeo_inspect_digest(f"docker://{ref}", creds=f"{user}:{token}") == pushed
    docker.rmi(ref, "wharf-e2e/imported:latest")
    assert docker.pull(ref) == pushed
    assert docker.image_id(ref) == image_id
    docker.rmi(ref)
    docker.run("logout", wharf.host)
    with pytest.raises(CommandError):
        docker.pull(ref)


def test_docker_on_a_host_based_tenant_endpoint(
    docker: DockerClient, wharf: WharfServer, wharf_tenant, host_alias: Callable[[str], str], tmp_path: Path
) -> None:
    tenant, user, token = wharf_tenant
    host = f"{host_alias(f'{tenant.slug}.wharf.test')}:{wharf.port}"
    ref = f"{host}/app:v1"
    write_layer_tar(tmp_path / "rootfs.tar", size=200_000, seed=14)
    docker.import_tar(tmp_path / "rootfs.tar", ref)
    docker.login(host, user, token)
    pushed = docker.push(ref)
    # The same repository through the path-based endpoint.
    r = _http().get(
        f"{wharf.url}/v2/{tenant.slug}/app/manifests/v1",
        auth=(user, token),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == pushed
    docker.rmi(ref)
    assert docker.pull(ref) == pushed
    docker.rmi(ref)


def test_ctr_push_pull_plain_http(containerd: Containerd, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    info = build_oci_layout(tmp_path / "oci", layers=[7 * MiB, 3000], tag="v1", seed=15)
    name = f"{wharf.host}/{tenant.slug}/ctr"
    archive = write_oci_archive(info.layout, tmp_path / "img.tar", image_name=name)
    containerd.ctr("images", "import", "--no-unpack", str(archive))
    containerd.ctr("images", "push", "--plain-http", "--user", f"{user}:{token}", f"{name}:v1")
    assert skopeo_inspect_digest(f"docker://{name}:v1", creds=f"{user}:{token}") == info.manifest_digest
    containerd.ctr("images", "rm", "--sync", f"{name}:v1")
    containerd.ctr("images", "pull", "--plain-http", "--user", f"{user}:{token}", f"{name}:v1")
    assert containerd.image_digest(f"{name}:v1") == info.manifest_digest
    containerd.ctr("images", "rm", "--sync", f"{name}:v1")


def test_oras_artifact_with_subject_and_referrers(
    skopeo: Run, make_oras_client, wharf: WharfServer, wharf_tenant, tmp_path: Path
) -> None:
    tenant, user, token = wharf_tenant
    repo = f"{tenant.slug}/art"
    image = build_oci_layout(tmp_path / "oci", layers=[1000], seed=16)
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{user}:{token}",
        image.oci_ref,
        f"docker://{wharf.host}/{repo}:v1",
    )
    subject = manifest_descriptor(wharf.host, repo, "v1", auth=(user, token))
    (tmp_path / "files").mkdir()
    sbom = tmp_path / "files" / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "components": []}))
    client = make_oras_client(wharf.host, user, token)
    pushed = oras_push_artifact(
        client, f"{wharf.host}/{repo}:sbom", [sbom], artifact_type="application/vnd.cyclonedx+json", subject=subject
    )
    files = oras_pull_artifact(client, f"{wharf.host}/{repo}:sbom", tmp_path / "out")
    assert [f.read_bytes() for f in files] == [sbom.read_bytes()]
    r = _http().get(f"{wharf.url}/v2/{repo}/referrers/{image.manifest_digest}", auth=(user, token), timeout=30)
    assert r.status_code == 200
    assert [(m["digest"], m["artifactType"]) for m in r.json()["manifests"]] == [
        (pushed.digest, "application/vnd.cyclonedx+json")
    ]
    r = _http().get(
        f"{wharf.url}/v2/{repo}/referrers/{image.manifest_digest}?artifactType=text/plain", auth=(user, token), timeout=30
    )
    assert r.json()["manifests"] == [] and r.headers["OCI-Filters-Applied"] == "artifactType"


def test_upload_resumes_after_the_web_server_restarts(wharf_tenant, tmp_path: Path) -> None:
    """Every byte of session state is in PostgreSQL and S3: a new process continues the upload."""
    tenant, user, token = wharf_tenant
    server = start_wharf(tmp_path)
    data = os.urandom(9 * MiB + 123)
    first, rest = data[: 6 * MiB + 7], data[6 * MiB + 7 :]
    try:
        http = _http()
        r = http.post(f"{server.url}/v2/{tenant.slug}/resume/blobs/uploads/", auth=(user, token), timeout=30)
        loc = r.headers["Location"]
        r = http.patch(
            server.url + loc, data=first, auth=(user, token), headers={"Content-Range": f"0-{len(first) - 1}"}, timeout=60
        )
        assert r.status_code == 202 and r.headers["Range"] == f"0-{len(first) - 1}"
        server.stop()
        server.start()
        http = _http()
        r = http.get(server.url + loc, auth=(user, token), timeout=30)
        assert r.status_code == 204 and r.headers["Range"] == f"0-{len(first) - 1}"
        # A chunked (Transfer-Encoding) body, as Docker sends it: Django alone would read it as empty.
        chunks = iter([rest[:MiB], rest[MiB:]])
        r = http.patch(server.url + loc, data=chunks, auth=(user, token), timeout=60)
        assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = http.put(f"{server.url}{loc}?digest={digest}", auth=(user, token), timeout=60)
        assert r.status_code == 201, r.text
        r = http.get(f"{server.url}/v2/{tenant.slug}/resume/blobs/{digest}", auth=(user, token), timeout=60)
        assert r.content == data
    finally:
        server.stop()


def test_body_shorter_than_its_content_length_is_refused(wharf: WharfServer, wharf_tenant) -> None:
    tenant, user, token = wharf_tenant
    http = _http()
    loc = http.post(f"{wharf.url}/v2/{tenant.slug}/short/blobs/uploads/", auth=(user, token), timeout=30).headers["Location"]
    import base64

    auth = base64.b64encode(f"{user}:{token}".encode()).decode()
    with socket.create_connection(("127.0.0.1", wharf.port), timeout=30) as s:
        s.sendall(
            f"PATCH {loc} HTTP/1.1\r\nHost: {wharf.host}\r\nAuthorization: Basic {auth}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"x" * 10
        )
        s.shutdown(socket.SHUT_WR)
        received = b""
        while b"SIZE_INVALID" not in received:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        reply = received.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 400") and "SIZE_INVALID" in reply
    r = http.get(wharf.url + loc, auth=(user, token), timeout=30)
    assert r.headers["Range"] == "0-0"
    assert BlobUpload.objects.get(pk=loc.rsplit("/", 1)[1]).offset == 0


def test_two_clients_push_the_same_layer_at_once(skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    info = build_oci_layout(tmp_path / "oci", layers=[12 * MiB], tag="v1", seed=17)
    errors: list[BaseException] = []

    def push(repo: str) -> None:
        try:
            skopeo(
                "copy",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--dest-creds",
                f"{user}:{token}",
                info.oci_ref,
                f"docker://{wharf.host}/{tenant.slug}/{repo}:v1",
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(f"same{i}",)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert Blob.objects.filter(tenant=tenant, digest=info.layers[0].digest).count() == 1
    for i in range(2):
        r = _http().get(f"{wharf.url}/v2/{tenant.slug}/same{i}/blobs/{info.layers[0].digest}", auth=(user, token), timeout=60)
        assert harness.sha256_digest(r.content) == info.layers[0].digest


def _push_blob_http(http: requests.Session, base: str, repo: str, data: bytes, auth) -> str:
    digest = harness.sha256_digest(data)
    r = http.post(f"{base}/v2/{repo}/blobs/uploads/?digest={digest}", data=data, auth=auth)
    if r.status_code == 202:  # Distribution 2.8 ignores ?digest= on POST: finish the session
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else base + loc
        r = http.put(loc + ("&" if "?" in loc else "?") + f"digest={digest}", data=data, auth=auth)
    assert r.status_code == 201, (base, r.status_code, r.text)
    return digest


def test_bad_manifest_requests_are_answered_as_distribution_answers_them(
    wharf: WharfServer, wharf_tenant, distribution_registry
) -> None:
    """The same requests to Distribution 2.8 and to a live Wharf: same status; Wharf's codes as the OCI spec names them.

    GET/HEAD/DELETE of a reference that is not a tag is a 404 (what the OCI conformance suite
    expects), and a manifest naming a blob or child manifest the repository lacks is a 400.
    """
    tenant, user, token = wharf_tenant
    http = _http()
    targets = {
        "distribution": (distribution_registry.url, "conformance/app", None),
        "wharf": (wharf.url, f"{tenant.slug}/app", (user, token)),
    }
    oci, index_type = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"
    answers: dict[str, list[tuple[str, int, str]]] = {}
    for name, (base, repo, auth) in targets.items():
        config = _push_blob_http(http, base, repo, b'{"architecture":"amd64","os":"linux"}', auth)
        layer = _push_blob_http(http, base, repo, b"a layer for both", auth)
        doc = {
            "schemaVersion": 2,
            "mediaType": oci,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 16}],
        }
        good = json.dumps(doc).encode()
        assert http.put(f"{base}/v2/{repo}/manifests/v1", data=good, headers={"Content-Type": oci}, auth=auth).status_code == 201
        missing_blob = json.dumps(
            {**doc, "layers": [{**doc["layers"][0], "digest": harness.sha256_digest(b"never pushed")}]}
        ).encode()
        missing_child = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": index_type,
                "manifests": [{"mediaType": oci, "digest": harness.sha256_digest(b"no such manifest"), "size": 16}],
            }
        ).encode()
        requests_ = [
            ("GET .INVALID_MANIFEST_NAME", "GET", ".INVALID_MANIFEST_NAME", None, None),
            ("HEAD .INVALID_MANIFEST_NAME", "HEAD", ".INVALID_MANIFEST_NAME", None, None),
            ("DELETE -not-a-tag", "DELETE", "-not-a-tag", None, None),
            ("GET unknown tag", "GET", "nope", None, None),
            ("PUT missing blob", "PUT", "v2", missing_blob, oci),
            ("PUT missing child", "PUT", "v3", missing_child, index_type),
        ]
        for label, method, ref, body, content_type in requests_:
            r = http.request(
                method,
                f"{base}/v2/{repo}/manifests/{ref}",
                data=body,
                headers={"Content-Type": content_type} if content_type else {},
                auth=auth,
            )
            code = (
                r.json()["errors"][0]["code"]
                if r.content and r.headers.get("Content-Type", "").startswith("application/json")
                else ""
            )
            answers.setdefault(name, []).append((label, r.status_code, code))
    assert [(label, status) for label, status, _ in answers["wharf"]] == [
        (label, status) for label, status, _ in answers["distribution"]
    ], answers
    codes = {label: code for label, _, code in answers["wharf"]}
    assert codes == {
        "GET .INVALID_MANIFEST_NAME": "MANIFEST_UNKNOWN",
        "HEAD .INVALID_MANIFEST_NAME": "",
        "DELETE -not-a-tag": "MANIFEST_UNKNOWN",
        "GET unknown tag": "MANIFEST_UNKNOWN",
        "PUT missing blob": "MANIFEST_BLOB_UNKNOWN",
        "PUT missing child": "MANIFEST_UNKNOWN",
    }, answers
    assert not Manifest.objects.filter(tenant=tenant).exclude(repository__name="app").exists()
    assert Manifest.objects.filter(tenant=tenant).count() == 1
