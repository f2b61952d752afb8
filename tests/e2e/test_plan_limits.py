"""A real client against the plan's limits (docs/decisions/0039): skopeo prints the refusal's message in full."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from accounts.limits import TenantLimits
from accounts.services import tenant_limits_set
from gateway.registry.models import Blob, BlobUpload, Manifest, Repository
from tests.e2e.harness import CommandError, build_oci_layout
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Run = Callable[..., subprocess.CompletedProcess[str]]


def _push_refused(skopeo: Run, wharf: WharfServer, creds: str, src: str, dest: str) -> str:
    with pytest.raises(CommandError) as refused:
        skopeo("copy", "--dest-tls-verify=false", "--retry-times=0", "--dest-creds", creds, src, dest, timeout=120)
    return refused.value.stderr


def test_skopeo_push_over_the_storage_quota_prints_the_quota_and_leaves_nothing(
    skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path
) -> None:
    tenant, user, token = wharf_tenant
    image = build_oci_layout(tmp_path / "oci", layers=[3 * 1024 * 1024], tag="v1", seed=39)
    tenant_limits_set(tenant=tenant, limits=TenantLimits(storage_quota_bytes=1024 * 1024))
    stderr = _push_refused(skopeo, wharf, f"{user}:{token}", image.oci_ref, f"docker://{wharf.host}/{tenant.slug}/app:v1")
    assert "denied" in stderr and "storage quota exceeded" in stderr, stderr
    assert "1048576-byte storage quota" in stderr and f"/orgs/{tenant.slug}/billing/" in stderr, stderr
    # The layer that did not fit left no blob, no open session; no manifest was stored.
    assert not Blob.objects.filter(tenant=tenant, size__gt=1024 * 1024).exists()
    assert not BlobUpload.objects.filter(tenant=tenant, state=BlobUpload.State.ACTIVE).exists()
    assert not Manifest.objects.filter(tenant=tenant).exists()


def test_skopeo_push_of_a_private_repository_past_the_limit_prints_the_limit(
    skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path
) -> None:
    tenant, user, token = wharf_tenant
    creds = f"{user}:{token}"
    image = build_oci_layout(tmp_path / "oci", layers=[1000], tag="v1", seed=40)
    tenant_limits_set(tenant=tenant, limits=TenantLimits(private_repositories_limit=1))
    ref = f"docker://{wharf.host}/{tenant.slug}"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, image.oci_ref, f"{ref}/one:v1", timeout=120)
    stderr = _push_refused(skopeo, wharf, creds, image.oci_ref, f"{ref}/two:v1")
    assert "denied" in stderr and "private repositories limit reached" in stderr, stderr
    assert "allows 1 private repositories" in stderr and f"/orgs/{tenant.slug}/billing/" in stderr, stderr
    assert list(Repository.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["one"]
