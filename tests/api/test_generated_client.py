"""A client generated from docs/api/openapi.yaml (openapi-python-client) drives one real flow against the live server.

The owner's token creates a robot with push and pull; skopeo pushes an image with the robot's
credentials; the client lists the tag, deletes it, and runs GC as a job (`POST …/jobs`, then polls
`GET …/jobs/{id}`) on a real Celery worker. The client is generated into a temporary directory at
test time and never committed (`make api-client` does the same by hand). See docs/decisions/0028.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.api.live import LiveTenant
from tests.e2e import harness
from tests.e2e.wharf import WharfServer
from tests.helpers import ROOT, celery_worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SCHEMA = ROOT / "docs" / "api" / "openapi.yaml"
PACKAGE = "wharf_api_client"
JOBS, JOB = "/api/v1/tenants/{slug}/jobs", "/api/v1/tenants/{slug}/jobs/{%s}"


def generate_client(out_dir: Path) -> ModuleType:
    """openapi-python-client's package for SCHEMA under out_dir, imported (it formats with the venv's ruff)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    config = SCHEMA.parent / "openapi-python-client.yaml"
    command = [
        str(bin_dir / "openapi-python-client"),
        "generate",
        "--path",
        str(SCHEMA),
        "--config",
        str(config),
        "--meta",
        "none",
    ]
    done = subprocess.run(
        [*command, "--output-path", str(out_dir / PACKAGE), "--fail-on-warning"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out_dir))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out_dir))


def operation_module(client_package: ModuleType, schema: dict, path: str, method: str) -> ModuleType | None:
    """The generated module of the operation at `path`/`method` (api/<first tag>/<operationId>), or None if the schema has none."""
    operation = schema["paths"].get(path, {}).get(method)
    if operation is None:
        return None
    return importlib.import_module(f"{client_package.__name__}.api.{operation['tags'][0]}.{operation['operationId']}")


def skopeo_push(tmp_path: Path, host: str, ref: str, creds: str) -> harness.ImageInfo:
    harness.require_binary(harness.SKOPEO)
    info = harness.build_oci_layout(tmp_path / "oci", layers=[4096, 20_000], tag="v1", seed=28)
    harness.skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds, info.oci_ref, f"docker://{host}/{ref}"
    )
    return info


@pytest.fixture
def skopeo_ready() -> None:
    try:
        harness.require_binary(harness.SKOPEO)
    except harness.Unavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"e2e prerequisite missing (CI=true): {exc}", pytrace=False)
        pytest.skip(str(exc))


def test_generated_client_flow(live_api: WharfServer, live_tenant: LiveTenant, skopeo_ready, tmp_path: Path) -> None:
    wharf = generate_client(tmp_path / "client")
    from wharf_api_client.api.repositories import repositories_tags_delete, repositories_tags_list  # type: ignore[import-not-found]
    from wharf_api_client.api.robots import tenant_robots_create  # type: ignore[import-not-found]
    from wharf_api_client.models import RobotCreateInputRequest  # type: ignore[import-not-found]

    client = wharf.AuthenticatedClient(base_url=live_api.url, token=live_tenant.token, raise_on_unexpected_status=True)
    slug = live_tenant.slug

    body = RobotCreateInputRequest.from_dict({"name": "pusher", "scopes": ["push", "pull"]})
    created = tenant_robots_create.sync_detailed(slug=slug, client=client, body=body)
    assert created.status_code == 201, created.content
    robot = created.parsed
    assert robot.username == f"{slug}+pusher" and {s.value for s in robot.scopes} == {"push", "pull"}

    info = skopeo_push(tmp_path, live_api.host, f"{slug}/ci/app:v1", f"{robot.username}:{robot.secret}")

    page = repositories_tags_list.sync(slug=slug, name="ci/app", client=client)
    assert [(t.name, t.digest) for t in page.results] == [("v1", info.manifest_digest)]
    assert page.next_ is None

    deleted = repositories_tags_delete.sync_detailed(slug=slug, name="ci/app", tag="v1", client=client)
    assert deleted.status_code == 204
    assert repositories_tags_list.sync(slug=slug, name="ci/app", client=client).results == []

    run_gc_job(wharf, client, slug)


def run_gc_job(wharf: ModuleType, client: Any, slug: str) -> None:
    """POST …/jobs {"kind": "gc"} → 202 + Location, then GET …/jobs/{id} until it has finished (a real worker runs it)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    start = operation_module(wharf, schema, JOBS, "post")
    job_path = next((p for p in schema["paths"] if p.startswith(JOBS + "/{") and p.count("{") == 2), None)
    if start is None or job_path is None:
        pytest.skip(f"the schema has no `POST {JOBS}` and `GET {JOBS}/{{id}}` yet (GC as a job is built on another branch)")
    poll = operation_module(wharf, schema, job_path, "get")
    assert poll is not None
    id_param = job_path.rsplit("{", 1)[1].rstrip("}")
    body_type = typing.get_type_hints(start.sync_detailed)["body"]
    log = tempfile.NamedTemporaryFile(prefix="wharf-api-worker-", suffix=".log", delete=False)  # noqa: SIM115 - read after the worker
    worker = celery_worker("celery,gc,audit", log, GATEWAY_GC_GRACE_SECONDS="0")  # the queues deploy/run.py serves
    try:
        started = start.sync_detailed(slug=slug, client=client, body=body_type.from_dict({"kind": "gc", "dry_run": False}))
        assert started.status_code == 202, started.content
        job_id = started.parsed.id
        assert started.headers["Location"].endswith(f"/api/v1/tenants/{slug}/jobs/{job_id}")
        deadline, job = time.monotonic() + 120, started.parsed
        while str(job.state) not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = poll.sync(slug=slug, client=client, **{id_param: job_id})
        assert str(job.state) == "succeeded", (job.to_dict(), Path(log.name).read_text()[-3000:])
        assert job.to_dict().get("bytes_freed", 1) > 0, job.to_dict()  # the deleted image shares no blob with the seeded one
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        os.unlink(log.name)
