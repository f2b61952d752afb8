"""One `docker login`, every client on the machine: skopeo, podman and buildah reuse the auth file docker wrote.

Docker stores the refresh token Wharf returns (an OAuth2 offline token) as `identitytoken` in
its config.json. containers/image (skopeo, podman, buildah) reads that file and trades the
identity token at `POST /auth/token` with a `Transfer-Encoding: chunked` body and no
Content-Length, which Django alone reads as an empty form.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from accounts.models import AuditEvent, User
from gateway.registry.models import Manifest
from gateway.registry.services.repositories import repository_visibility_set
from tests.e2e import harness
from tests.e2e.conftest import needs
from tests.e2e.harness import DockerClient, build_oci_layout, write_layer_tar
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
Run = Callable[..., subprocess.CompletedProcess[str]]
PODMAN = "/usr/bin/podman"
BUILDAH = "/usr/bin/buildah"
PASSWORD = "a-long-password-2"


def _binary(path: str, package: str) -> str:
    def check() -> str:
        try:
            return harness.require_binary(path)
        except harness.Unavailable:
            raise harness.Unavailable(f"{path} not found (Debian package {package}; `make system-deps` installs it)") from None

    return needs(check)


def _containers_tool(path: str, package: str, root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`tool(*args)`: podman or buildah with private storage under `root` (vfs) and no system configuration state."""
    binary = _binary(path, package)
    storage = ["--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "vfs"]
    env = {"XDG_RUNTIME_DIR": str(root / "xdg"), "REGISTRY_AUTH_FILE": str(root / "no-such-auth.json")}
    (root / "xdg").mkdir(parents=True, exist_ok=True)

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        extra = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"] if path == PODMAN else []
        return harness.run_command([binary, *storage, *extra, *args], env=env, timeout=timeout)

    return run


@pytest.fixture
def docker_login(docker: DockerClient, wharf: WharfServer, wharf_tenant) -> tuple[object, Path]:
    """`docker login` with a password; returns the tenant and the auth file docker wrote (an identity token in it)."""
    tenant, username, _ = wharf_tenant
    user = User.objects.get(username=username)
    user.set_password(PASSWORD)
    user.save()
    assert "Login Succeeded" in docker.login(wharf.host, username, PASSWORD).stdout
    auth_file = docker.config_dir / "config.json"
    entry = json.loads(auth_file.read_text())["auths"][wharf.host]
    assert entry.get("identitytoken", "").startswith("wharf_rft_"), entry  # the refresh token, not the password
    assert PASSWORD not in auth_file.read_text() and base64.b64decode(entry["auth"]).decode() == f"{username}:"
    return tenant, auth_file


def test_skopeo_reuses_dockers_login_to_push_and_pull(skopeo: Run, wharf: WharfServer, docker_login, tmp_path: Path) -> None:
    tenant, auth_file = docker_login
    info = build_oci_layout(tmp_path / "oci", layers=[40_000, 3000], tag="v1", seed=31)
    ref = f"docker://{wharf.host}/{tenant.slug}/skopeo:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-authfile", str(auth_file), info.oci_ref, ref)
    out = skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", str(auth_file), ref).stdout
    assert harness.sha256_digest(out.encode()) == info.manifest_digest
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-authfile",
        str(auth_file),
        ref,
        f"oci:{tmp_path / 'back'}:v1",
    )
    for blob in info.all_blobs():
        back = tmp_path / "back" / "blobs" / "sha256" / blob.digest.split(":")[1]
        assert harness.sha256_digest(back.read_bytes()) == blob.digest
    # A public repository too: the stored identity token is used there as well, and must not break the pull.
    repository_visibility_set(tenant=tenant, name="skopeo", visibility="public")
    out = skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", str(auth_file), ref).stdout
    assert harness.sha256_digest(out.encode()) == info.manifest_digest
    assert Manifest.objects.filter(tenant=tenant).count() == 1


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (podman refuses a runroot longer than 50 characters), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="wharf-ctr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_podman_and_buildah_reuse_dockers_login(
    docker: DockerClient, wharf: WharfServer, docker_login, tmp_path: Path, short_dir: Path
) -> None:
    tenant, auth_file = docker_login
    ref = f"{wharf.host}/{tenant.slug}/docker:v1"
    write_layer_tar(tmp_path / "rootfs.tar", size=300_000, seed=32)
    docker.import_tar(tmp_path / "rootfs.tar", ref)
    pushed = docker.push(ref)
    podman = _containers_tool(PODMAN, "podman", short_dir / "p")
    authfile = ["--authfile", str(auth_file), "--tls-verify=false"]
    podman("pull", *authfile, ref)
    podman_ref = f"{wharf.host}/{tenant.slug}/podman:v1"
    podman("tag", ref, podman_ref)
    podman("push", *authfile, podman_ref)
    buildah = _containers_tool(BUILDAH, "buildah", short_dir / "b")
    buildah("pull", *authfile, podman_ref)
    buildah_ref = f"{wharf.host}/{tenant.slug}/buildah:v1"
    buildah("tag", podman_ref, buildah_ref)
    buildah("push", *authfile, buildah_ref)
    podman("pull", *authfile, buildah_ref)  # and back
    # Every copy is the image docker pushed (layer bytes identical; the manifest may be re-encoded).
    manifests = {
        name: Manifest.objects.filter(tenant=tenant, repository__name=name).count() for name in ("docker", "podman", "buildah")
    }
    assert manifests == {"docker": 1, "podman": 1, "buildah": 1}
    docker.rmi(ref)
    assert docker.pull(ref) == pushed
    # No refresh-token grant was refused along the way.
    assert not AuditEvent.objects.filter(action="login.failed", actor="refresh_token").exists()


def test_a_raw_chunked_token_request_through_gunicorn(wharf: WharfServer, wharf_tenant) -> None:
    tenant, username, token = wharf_tenant
    form = f"grant_type=password&username={username}&password={token}&service={wharf.host}&access_type=offline&client_id=e2e"
    http = requests.Session()
    http.trust_env = False
    # A generator body makes requests send `Transfer-Encoding: chunked` and no Content-Length.
    r = http.post(
        f"{wharf.url}/auth/token",
        data=(part.encode() for part in (form[:20], form[20:])),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    refresh = r.json()["refresh_token"]
    form = f"grant_type=refresh_token&refresh_token={refresh}&service={wharf.host}&scope=repository:{tenant.slug}/x:pull&client_id=e2e"
    r = http.post(
        f"{wharf.url}/auth/token",
        data=iter([form.encode()]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["access_token"], r.text
    r = http.post(f"{wharf.url}/auth/token", data=iter([b"grant_type=password&password=" + b"p" * 70_000]), timeout=30)
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
