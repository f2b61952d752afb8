"""Jobs started through the API, run end to end by a real Celery worker against the real SeaweedFS."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

import pytest
from django.test import Client

from gateway.registry.models import Blob, JobRun, Repository
from gateway.registry.services import jobs, repository_delete
from gateway.registry.services.jobs import TaskRef
from tests.api.conftest import Api
from tests.factories import make_token
from tests.helpers import Reg, basic, celery_worker, sha

BASE = "/api/v1/tenants/acme"
OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def worker(monkeypatch, redis_client):
    """A real worker on a queue of this test's own, where every job the API starts is sent; GC grace 0."""
    queue = f"jobs-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setattr(jobs, "GC_TASK", TaskRef(jobs.GC_TASK.name, queue))
    monkeypatch.setattr(jobs, "AUDIT_TASK", TaskRef(jobs.AUDIT_TASK.name, queue))
    monkeypatch.setattr(repository_delete, "REPOSITORY_DELETE_TASK", TaskRef(jobs.REPOSITORY_DELETE_TASK.name, queue))
    log = tempfile.NamedTemporaryFile(prefix="wharf-jobs-worker-", suffix=".log", delete=False)  # noqa: SIM115 - read after the worker
    proc = celery_worker(queue, log, GATEWAY_GC_GRACE_SECONDS="0")
    yield log.name
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    redis_client.delete(queue)
    os.unlink(log.name)


def _finished(api: Api, location: str, log: str, timeout: float = 90) -> dict:
    """Poll the job at `location` until it has finished; its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.client.get(location, **api.headers).json()
        if body["state"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    with open(log, errors="replace") as f:
        raise AssertionError(f"job {location} did not finish; worker log:\n{f.read()[-4000:]}")


def _start(api: Api, body: dict) -> str:
    response = api.post(f"{BASE}/jobs", body)
    assert response.status_code == 202, response.content
    return response["Location"]


@pytest.mark.django_db(transaction=True)
def test_a_gc_started_through_the_api_frees_an_untagged_image_and_its_dry_run_frees_nothing(
    acme, owner, api_write, blob_store, worker
):
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("app", "old", [b"doomed-layer"])
    reg.push_image("app", "keep", [b"kept-layer"])
    assert api_write.delete(f"{BASE}/repositories/app/-/tags/old").status_code == 204
    doomed_key = Blob.objects.get(digest=sha(b"doomed-layer")).storage_key

    dry = _finished(api_write, _start(api_write, {"kind": "gc", "dry_run": True}), worker)
    assert dry["state"] == "succeeded" and dry["dry_run"] is True and dry["counts"]["blobs_deleted"] == 1, dry
    assert blob_store.stat(doomed_key) is not None and Blob.objects.filter(digest=sha(b"doomed-layer")).exists()

    real = _finished(api_write, _start(api_write, {"kind": "gc"}), worker)
    assert real["state"] == "succeeded" and real["dry_run"] is False, real
    assert real["bytes_freed"] >= len(b"doomed-layer") and real["bytes_freed"] == dry["bytes_freed"]
    assert real["finished_at"] and real["counts"]["blobs_deleted"] == 1
    assert blob_store.stat(doomed_key) is None and not Blob.objects.filter(digest=sha(b"doomed-layer")).exists()
    assert reg.get("/v2/acme/app/manifests/keep", HTTP_ACCEPT=OCI).status_code == 200
    assert JobRun.objects.filter(kind="gc").count() == 2  # the worker filled the runs the API made

    audit = _finished(api_write, _start(api_write, {"kind": "audit"}), worker)
    assert audit["state"] == "succeeded" and audit["kind"] == "audit", audit


@pytest.mark.django_db(transaction=True)
def test_a_repository_deleted_through_the_api_is_emptied_by_the_worker_and_gc_keeps_shared_layers(
    acme, owner, api_write, blob_store, worker
):
    reg = Reg(Client(), basic(owner.username, make_token(owner)))
    reg.push_image("app", "v1", [b"shared-layer", b"own-layer"])
    reg.push_image("app", "v2", [b"own-layer-2"])
    _, other_payload = reg.push_image("other", "v1", [b"shared-layer"])
    own, shared = (Blob.objects.get(digest=sha(d)).storage_key for d in (b"own-layer", b"shared-layer"))
    response = api_write.delete(f"{BASE}/repositories/app")
    assert response.status_code == 202, response.content
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 404
    _, new_payload = reg.push_image("app", "new", [b"new-layer"])  # the name is free at once

    job = _finished(api_write, response["Location"], worker)
    assert job["state"] == "succeeded" and job["kind"] == "repository_delete" and job["target"] == "app", job
    assert job["counts"]["tags_deleted"] == 2 and job["counts"]["manifests_deleted"] == 2
    assert job["counts"]["repository_deleted"] == 1
    assert not Repository.objects.exclude(deleted_name="").exists()
    gc = _finished(api_write, _start(api_write, {"kind": "gc"}), worker)
    assert gc["state"] == "succeeded" and gc["bytes_freed"] > 0, gc
    assert blob_store.stat(own) is None and blob_store.stat(shared) is not None
    assert reg.get("/v2/acme/other/manifests/v1", HTTP_ACCEPT=OCI).content == other_payload
    assert reg.get("/v2/acme/app/manifests/new", HTTP_ACCEPT=OCI).content == new_payload
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 404
    assert reg.get("/v2/_catalog").json()["repositories"] == ["acme/app", "acme/other"]
