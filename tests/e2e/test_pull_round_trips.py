"""The live server's Redis traffic per manifest GET, as Redis itself sees it (MONITOR; docs/decisions/0047): one EVALSHA
for a limited tenant (the window script, which queues the event too), one RPUSH for an unlimited one, nothing else."""

from __future__ import annotations

import base64
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from accounts.limits import TenantLimits
from accounts.services import tenant_limits_set
from gateway.registry.pull_limits import KEY_PREFIX
from tests.e2e.harness import build_oci_layout
from tests.e2e.wharf import WharfServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
OCI = "application/vnd.oci.image.manifest.v1+json"


class Monitor:
    """MONITOR in a thread: the commands of our Redis db between two ECHO markers, Lua's own calls left out."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.seen: list[dict] = []
        self.lock = threading.Condition()
        self._monitor = self.client.monitor().__enter__()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                with self.lock:
                    self.seen.append(command)
                    self.lock.notify_all()
        except (redis.ConnectionError, ValueError, AttributeError):  # closed at the end
            return

    def between(self, action, *, naming: str) -> list[str]:
        """The names of the commands naming `naming` that reached Redis from other clients on our db while `action` ran."""
        start, end = f"start-{uuid.uuid4().hex}", f"end-{uuid.uuid4().hex}"
        self.client.echo(start)
        action()
        self.client.echo(end)
        with self.lock:
            assert self.lock.wait_for(lambda: any(end in c["command"] for c in self.seen), timeout=30)
            commands = list(self.seen)
        opened = next(i for i, c in enumerate(commands) if start in c["command"])
        closed = next(i for i, c in enumerate(commands) if end in c["command"])
        ours = [c for c in commands[opened + 1 : closed] if c.get("db") == self.db and c.get("client_type") != "lua"]
        # Only what names this test's repository (a Celery worker may poll its broker meanwhile, other tests record).
        return [c["command"].split(" ")[0] for c in ours if naming in c["command"]]

    def close(self) -> None:
        self._monitor.connection.disconnect()
        self.client.close()


@pytest.fixture
def monitor():
    watching = Monitor()
    yield watching
    watching.close()


def _get(url: str, user: str, token: str) -> None:
    auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": auth, "Accept": OCI})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as response:
        assert response.status == 200
        response.read()


def _pushed(skopeo, wharf: WharfServer, tenant, user: str, token: str, tmp_path: Path) -> tuple[str, str]:
    """An image pushed to a repository of a unique name (which every event of its pulls carries); its manifest URL."""
    repository = f"app-{uuid.uuid4().hex[:12]}"
    image = build_oci_layout(tmp_path / "oci", layers=[1000], tag="v1", seed=47)
    ref = f"docker://{wharf.host}/{tenant.slug}/{repository}:v1"
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{user}:{token}", image.oci_ref, ref, timeout=60)
    url = f"{wharf.url}/v2/{tenant.slug}/{repository}/manifests/v1"
    for _ in range(4):  # both workers: credentials checked and cached, the tenant cached, the script loaded
        _get(url, user, token)
    return url, f'"r":"{repository}"'  # in the event line (EVALSHA's argument or RPUSH's value)


def test_an_unlimited_tenants_manifest_get_reaches_redis_once_with_its_rpush(
    skopeo, wharf: WharfServer, wharf_tenant, tmp_path: Path, monitor
):
    tenant, user, token = wharf_tenant
    url, naming = _pushed(skopeo, wharf, tenant, user, token, tmp_path)
    assert monitor.between(lambda: [_get(url, user, token) for _ in range(3)], naming=naming) == ["RPUSH"] * 3


def test_a_limited_tenants_manifest_get_reaches_redis_once_with_the_script_that_also_queues(
    skopeo, wharf: WharfServer, wharf_tenant, tmp_path: Path, monitor, redis_client
):
    tenant, user, token = wharf_tenant
    # Before the server's first request for this fresh tenant, so no cached copy of it exists there.
    tenant_limits_set(tenant=tenant, limits=TenantLimits(pulls_per_window_authenticated=100))
    url, naming = _pushed(skopeo, wharf, tenant, user, token, tmp_path)
    key = f"{KEY_PREFIX}{tenant.pk}:tenant"
    counted = redis_client.zcard(key)
    assert counted == 4
    assert monitor.between(lambda: [_get(url, user, token) for _ in range(3)], naming=naming) == ["EVALSHA"] * 3
    assert redis_client.zcard(key) == counted + 3
