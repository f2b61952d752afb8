"""docker push of an image whose layers are in another repository of the tenant mounts them instead of re-uploading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.registry.models import Blob, BlobUpload, RepositoryBlob
from tests.e2e.harness import DockerClient, build_docker_archive
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _requests(wharf: WharfServer, method: str, path_prefix: str) -> list[tuple[str, int]]:
    """(request target, status) of every `method` the server logged under `path_prefix` (gunicorn's access log)."""
    pattern = re.compile(rf'"{method} ({re.escape(path_prefix)}\S*) HTTP/[\d.]+" (\d{{3}})')
    return [(m.group(1), int(m.group(2))) for m in pattern.finditer(wharf.log.read_text(errors="replace"))]


def test_docker_push_mounts_layers_from_another_repository(
    docker: DockerClient, wharf: WharfServer, wharf_tenant, tmp_path: Path
):
    tenant, user, token = wharf_tenant
    archive = build_docker_archive(
        tmp_path / "image.tar", layers=[300_000, 200_000, 100_000], repo_tag="wharf-e2e/mount:1", seed=31
    )
    docker.load(archive.path)
    base, app = f"{wharf.host}/{tenant.slug}/base:1", f"{wharf.host}/{tenant.slug}/app:1"
    docker.run("tag", archive.repo_tag, base)
    docker.run("tag", archive.repo_tag, app)
    docker.login(wharf.host, user, token)
    docker.push(base)
    layers = set(
        RepositoryBlob.objects.filter(repository__tenant=tenant, repository__name="base").values_list("blob__digest", flat=True)
    )
    assert len(layers) == 4  # three layers and the config

    docker.push(app)  # the same image in a second repository

    app_prefix = f"/v2/{tenant.slug}/app/"
    mounts = [
        (target, status) for target, status in _requests(wharf, "POST", app_prefix + "blobs/uploads/") if "mount=" in target
    ]
    mounted = {re.search(r"mount=([^&]+)", target).group(1).replace("%3A", ":") for target, status in mounts if status == 201}
    assert len(mounted) == 3 and mounted <= layers, mounts  # every layer mounted (201) from base
    assert all(f"from={tenant.slug}%2Fbase" in t or f"from={tenant.slug}/base" in t for t, _ in mounts)
    # No layer bytes were sent again: the only upload session (and PATCH) is the config's, which
    # docker always Puts (its manifest builder never mounts the config).
    assert len(_requests(wharf, "PATCH", app_prefix)) == 1
    assert BlobUpload.objects.filter(repository__tenant=tenant, repository__name="app").count() == 1
    assert Blob.objects.filter(tenant=tenant).count() == 4  # nothing stored twice
    app_blobs = set(
        RepositoryBlob.objects.filter(repository__tenant=tenant, repository__name="app").values_list("blob__digest", flat=True)
    )
    assert app_blobs == layers
