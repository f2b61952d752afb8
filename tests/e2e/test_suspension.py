"""A real client against a suspended tenant (docs/decisions/0023): skopeo pushes, is DENIED naming the suspension, still pulls."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import CommandError, build_oci_layout, skopeo_inspect_digest
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Run = Callable[..., subprocess.CompletedProcess[str]]
# The server caches a tenant for access.CACHE_SECONDS (10 s): a change shows within that.
SETTLE_SECONDS = 15.0


def _admin(wharf: WharfServer, secret: str, action: str, slug: str, body: dict | None = None) -> dict:
    session = requests.Session()
    session.trust_env = False
    r = session.post(
        f"{wharf.url}/api/v1/admin/tenants/{slug}/{action}", json=body or {}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert r.status_code == 200, r.text
    return r.json()


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not check():
        assert time.monotonic() < deadline, "the server did not see the change in time"
        time.sleep(1)


def test_skopeo_push_is_denied_while_suspended_and_pulls_go_on(
    skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path
) -> None:
    from tests.factories import UserFactory, make_token

    tenant, user, token = wharf_tenant
    creds = f"{user}:{token}"
    staff = make_token(UserFactory(username="ops" + tenant.slug, is_staff=True), scopes=["admin"])
    image = build_oci_layout(tmp_path / "oci", layers=[2000], tag="v1", seed=21)
    ref = f"docker://{wharf.host}/{tenant.slug}/app"

    def push(tag: str) -> None:
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, image.oci_ref, f"{ref}:{tag}", timeout=60)

    def push_denied() -> bool:
        try:
            push("v2")
        except CommandError as exc:
            assert "denied" in exc.stderr and "is suspended" in exc.stderr, exc.stderr
            return True
        return False

    push("v1")
    assert _admin(wharf, staff, "suspend", tenant.slug, {"reason": "e2e"})["status"] == "suspended"
    _until(push_denied)
    assert skopeo_inspect_digest(f"{ref}:v1", creds=creds) == image.manifest_digest
    skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, f"{ref}:v1", f"oci:{tmp_path / 'back'}:v1", timeout=60)
    assert _admin(wharf, staff, "reactivate", tenant.slug)["status"] == "active"
    _until(lambda: not push_denied())
    assert skopeo_inspect_digest(f"{ref}:v2", creds=creds) == image.manifest_digest
