"""docker login / skopeo --creds against a live Wharf with Docker token auth."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from accounts.services import robot_create
from gateway.registry.models import Manifest
from gateway.registry.services.repositories import repository_visibility_set
from tests.e2e.harness import CommandError, DockerClient, build_oci_layout, skopeo_inspect_digest, write_layer_tar
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("credential", ["password", "token", "robot"])
def test_docker_login_push_pull(credential: str, docker: DockerClient, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    if credential == "password":
        from accounts.models import User

        u = User.objects.get(username=user)
        u.set_password("a-long-password-1")
        u.save()
        login, secret = user, "a-long-password-1"
    elif credential == "token":
        login, secret = user, token
    else:
        robot = robot_create(tenant=tenant, name="ci", scopes=["pull", "push"])
        login, secret = robot.username, robot.secret
    ref = f"{wharf.host}/{tenant.slug}/{credential}:v1"
    write_layer_tar(tmp_path / "rootfs.tar", size=400_000, seed=21)
    docker.import_tar(tmp_path / "rootfs.tar", ref)
    out = docker.login(wharf.host, login, secret)
    assert "Login Succeeded" in out.stdout
    pushed = docker.push(ref)
    docker.rmi(ref)
    assert docker.pull(ref) == pushed
    docker.rmi(ref)
    docker.run("logout", wharf.host)
    with pytest.raises(CommandError, match="(?i)unauthorized|authentication required|denied"):
        docker.pull(ref)


def test_docker_login_with_a_wrong_password_fails_clearly(docker: DockerClient, wharf: WharfServer, wharf_tenant) -> None:
    _, user, _ = wharf_tenant
    with pytest.raises(CommandError) as err:
        docker.login(wharf.host, user, "wrong-password")
    assert "unauthorized" in str(err.value).lower() or "invalid username or password" in str(err.value)


def test_skopeo_with_creds_and_anonymous_public_pull(skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path) -> None:
    tenant, user, token = wharf_tenant
    info = build_oci_layout(tmp_path / "oci", layers=[3000], tag="v1", seed=22)
    ref = f"docker://{wharf.host}/{tenant.slug}/pub:v1"
    with pytest.raises(CommandError, match="(?i)unauthorized|authentication required|denied"):
        skopeo("copy", "--dest-tls-verify=false", info.oci_ref, ref, timeout=60)  # anonymous push
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", f"{user}:{token}", info.oci_ref, ref)
    with pytest.raises(CommandError, match="(?i)unauthorized|authentication required|denied"):
        skopeo_inspect_digest(ref)  # private: anonymous pull refused
    repository_visibility_set(tenant=tenant, name="pub", visibility="public")
    assert skopeo_inspect_digest(ref) == info.manifest_digest
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'back'}:v1")
    assert Manifest.objects.filter(tenant=tenant).count() == 1
