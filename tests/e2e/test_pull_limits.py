"""What real clients show at the pull rate limit (docs/decisions/0040): `docker pull` prints the message; skopeo waits
out Retry-After (containers/image retries a 429 up to four times in skopeo 1.9, sleeping Retry-After capped at
60 s) and then prints it."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accounts.limits import PULL_WINDOW_SECONDS, TenantLimits
from accounts.services import tenant_limits_set
from gateway.registry.pull_limits import KEY_PREFIX
from tests.e2e.harness import CommandError, DockerClient, build_oci_layout, sha256_digest, write_layer_tar
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Run = Callable[..., subprocess.CompletedProcess[str]]
W_MS = PULL_WINDOW_SECONDS * 1000


def _limit(tenant, authenticated: int) -> None:
    # Before the server's first request for this fresh tenant, so no cached copy of it exists there.
    tenant_limits_set(tenant=tenant, limits=TenantLimits(pulls_per_window_authenticated=authenticated))


def _message(tenant, wharf: WharfServer, limit: int) -> str:
    return f"pull rate limit reached: {tenant.slug} has used its {limit} pull{'s' if limit != 1 else ''} per 6 hours; the next pull is allowed in"


def test_docker_pull_at_the_limit_prints_the_whole_message(
    docker: DockerClient, wharf: WharfServer, wharf_tenant, tmp_path: Path
):
    tenant, user, token = wharf_tenant
    _limit(tenant, 1)
    ref = f"{wharf.host}/{tenant.slug}/app"
    docker.login(wharf.host, user, token)
    pushed = {}
    for tag, seed in (("v1", 40), ("v2", 43)):
        write_layer_tar(tmp_path / f"{tag}.tar", size=100_000, seed=seed)
        docker.import_tar(tmp_path / f"{tag}.tar", f"{ref}:{tag}")
        pushed[tag] = docker.push(f"{ref}:{tag}")  # a push spends nothing
        docker.rmi(f"{ref}:{tag}")
    assert docker.pull(f"{ref}:v1") == pushed["v1"]
    # Another image: docker may still hold v1's manifest after rmi and then would not GET it again.
    with pytest.raises(CommandError) as refused:
        docker.pull(f"{ref}:v2")
    printed = refused.value.stderr
    print(f"docker pull at the limit printed:\n{printed}")
    assert "toomanyrequests: " + _message(tenant, wharf, 1) in printed
    assert f"Raise the limit: {wharf.url}/orgs/{tenant.slug}/billing/" in printed


@pytest.fixture
def window_kept_full(redis_client) -> Iterator[Callable[..., None]]:
    """`keep_full(tenant, limit, seconds)`: other pulls keep the tenant's window full for `seconds` — one of them
    leaves every second and another arrives 0.6 s before it — so every pull is refused with a Retry-After of 1–2 s."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def keep_full(tenant, limit: int, seconds: int) -> None:
        key, start = f"{KEY_PREFIX}{tenant.pk}:tenant", int(time.time() * 1000)

        def leaving_after(n: int) -> float:  # the score of a pull that leaves the window n seconds after start
            return start - W_MS + n * 1000

        redis_client.zadd(key, {os.urandom(8): leaving_after(i + 1) for i in range(limit)})

        def refill() -> None:
            for i in range(seconds):
                if stop.wait(max(0.0, (start + (i + 1) * 1000 - 600) / 1000 - time.time())):
                    return
                redis_client.zadd(key, {os.urandom(8): leaving_after(limit + i + 1)})

        thread = threading.Thread(target=refill, daemon=True)
        thread.start()
        threads.append(thread)

    yield keep_full
    stop.set()
    for thread in threads:
        thread.join(5)


def test_skopeo_waits_out_retry_after_then_prints_the_message(
    skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path, window_kept_full
):
    tenant, user, token = wharf_tenant
    creds = f"{user}:{token}"
    _limit(tenant, 3)
    image = build_oci_layout(tmp_path / "oci", layers=[1000], tag="v1", seed=41)
    ref = f"docker://{wharf.host}/{tenant.slug}/app:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, image.oci_ref, ref, timeout=60)
    window_kept_full(tenant, 3, 40)
    started = time.monotonic()
    with pytest.raises(CommandError) as refused:
        skopeo("--debug", "inspect", "--raw", "--tls-verify=false", "--creds", creds, ref, timeout=120)
    took = time.monotonic() - started
    printed = refused.value.stderr
    print(f"skopeo at the limit ({took:.1f} s) printed:\n{printed[-1500:]}")
    retries = re.findall(r"Too many requests to \S+: sleeping for ([0-9.]+) seconds", printed)
    assert len(retries) >= 2 and all(float(s) in (1.0, 2.0) for s in retries), retries  # each after our Retry-After
    assert _message(tenant, wharf, 3) in printed
    assert took < 60


def test_skopeo_pulls_once_the_window_frees_a_pull(skopeo: Run, wharf: WharfServer, wharf_tenant, tmp_path: Path, redis_client):
    tenant, user, token = wharf_tenant
    creds = f"{user}:{token}"
    _limit(tenant, 2)
    image = build_oci_layout(tmp_path / "oci", layers=[1000], tag="v1", seed=42)
    ref = f"docker://{wharf.host}/{tenant.slug}/app:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, image.oci_ref, ref, timeout=60)
    now = int(time.time() * 1000)
    # Two earlier pulls: the older leaves the window in 2 s.
    redis_client.zadd(f"{KEY_PREFIX}{tenant.pk}:tenant", {b"older": now - W_MS + 2000, b"newer": now})
    started = time.monotonic()
    out = skopeo("--debug", "inspect", "--raw", "--tls-verify=false", "--creds", creds, ref, timeout=60)
    assert time.monotonic() - started >= 1.5
    assert "Too many requests to" in out.stderr and "sleeping for 2.000000 seconds" in out.stderr
    assert sha256_digest(out.stdout.encode()) == image.manifest_digest
