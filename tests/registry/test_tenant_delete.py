"""Deleting a tenant end to end against the real SeaweedFS: marked deleting at once, then purged by a resumable job.

Pushes a small image (and leaves an upload session open) into `acme`, deletes it, runs the
purge and checks that no object under its prefix and none of its rows are left, that the job
reports its counts, and that another tenant's objects and rows are untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, RobotAccount, Tenant
from accounts.services import robot_create
from gateway.registry.models import Blob, BlobUpload, JobRun, Manifest, ObjectDeletion, Repository, Tag
from gateway.registry.services import jobs, tenant_delete
from gateway.registry.services.tenant_delete import tenant_delete_start, tenant_purge, tenant_purge_to_completion
from gateway.storage import keys
from gateway.tasks import tenant_delete_task
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic, celery_worker


def _keys(store, tenant_id: int) -> list[str]:
    return sorted(o.key for o in store.list(keys.tenant_prefix(tenant_id)))


@pytest.fixture
def globex(db):
    user = UserFactory(username="gus")
    tenant = make_tenant("globex", owner=user)
    reg = Reg(Client(), basic("gus", make_token(user)), prefix="/v2/globex")
    reg.push_image("lib", "1", [b"globex layer"])
    return tenant


def _fill(reg: Reg, tenant: Tenant) -> None:
    reg.push_image("app", "1", [b"layer one", b"layer two"])
    reg.push_image("app/nested", "latest", [b"layer three"])
    started = reg.post(f"{reg.prefix}/app/blobs/uploads/")  # an upload session left open
    assert started.status_code == 202, started.content
    robot_create(tenant=tenant, name="ci", scopes=["pull"])


def _assert_gone(store, tenant_id: int) -> None:
    assert _keys(store, tenant_id) == []
    assert list(store.list_multipart(keys.tenant_prefix(tenant_id))) == []
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    for model in (Repository, Blob, Manifest, Tag, BlobUpload, ObjectDeletion):
        assert not model.objects.filter(tenant_id=tenant_id).exists(), model
    assert not Membership.objects.filter(tenant_id=tenant_id).exists()
    assert not RobotAccount.objects.filter(tenant_id=tenant_id).exists()


@pytest.mark.django_db
def test_delete_marks_at_once_then_the_purge_removes_every_object_and_row(reg, tenant, globex, blob_store):
    _fill(reg, tenant)
    other_keys = _keys(blob_store, globex.pk)
    assert other_keys and _keys(blob_store, tenant.pk)

    job = tenant_delete_start(tenant=tenant, actor="owner")
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.DELETING and job.kind == "tenant_delete" and job.state == "running"
    assert AuditEvent.objects.filter(action="tenant.delete", target="acme").exists()
    # Marked deleting: the registry no longer serves it, for pulls and pushes alike.
    assert reg.get("/v2/acme/app/manifests/1").status_code in (401, 403, 404)
    assert reg.post("/v2/acme/app/blobs/uploads/").status_code in (401, 403, 404)
    assert tenant_delete_start(tenant=tenant, actor="owner").pk == job.pk  # asking twice: the same job

    report = tenant_purge_to_completion(tenant=tenant, batch_size=2, max_batches=3)
    assert report is not None and report.done
    _assert_gone(blob_store, tenant.pk)
    job.refresh_from_db()
    assert job.state == JobRun.State.SUCCEEDED and job.tenant_id is None
    assert job.counts["tenant"] == "acme" and job.counts["tenants_deleted"] == 1
    assert job.counts["blobs_deleted"] == 4 and job.counts["manifests_deleted"] == 2 and job.counts["tags_deleted"] == 2
    assert job.counts["objects_deleted"] >= 4 + 4 + 2 + 2  # data, index, manifest and tag objects (the config is shared)
    assert AuditEvent.objects.filter(action="tenant.purge", target="acme", tenant__isnull=True).exists()
    # The other tenant: untouched.
    assert _keys(blob_store, globex.pk) == other_keys
    assert Tag.objects.filter(tenant=globex).count() == 1 and Tenant.objects.get(pk=globex.pk).status == "active"


@pytest.mark.django_db
def test_purge_refuses_a_tenant_that_is_not_deleting(reg, tenant, blob_store):
    reg.push_image("app", "1", [b"kept"])
    before = _keys(blob_store, tenant.pk)
    assert tenant_purge(tenant=tenant) is None
    assert _keys(blob_store, tenant.pk) == before and Tag.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_a_purge_that_dies_mid_batch_resumes_and_orphans_nothing(reg, tenant, globex, blob_store, monkeypatch):
    _fill(reg, tenant)
    other_keys = _keys(blob_store, globex.pk)
    job = tenant_delete_start(tenant=tenant, actor="owner")
    real_drain = tenant_delete.object_deletions_drain

    def dying_drain(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(tenant_delete, "object_deletions_drain", dying_drain)
    # Rows go first; the first object batch is recorded, then the worker "dies" before deleting it.
    with pytest.raises(RuntimeError):
        for _ in range(50):
            tenant_purge(tenant=tenant, job_id=job.pk, batch_size=3, max_batches=1)
    assert not Blob.objects.filter(tenant=tenant).exists()
    recorded = set(ObjectDeletion.objects.filter(tenant=tenant).values_list("key", flat=True))
    assert recorded and recorded <= set(_keys(blob_store, tenant.pk))
    job.refresh_from_db()
    assert job.state == JobRun.State.FAILED  # the failed invocation closed its run

    monkeypatch.setattr(tenant_delete, "object_deletions_drain", real_drain)
    # The redelivered message carries the closed job's id: a new run takes over and finishes.
    report = tenant_purge_to_completion(tenant=Tenant.objects.get(pk=tenant.pk), job_id=job.pk, batch_size=3, max_batches=2)
    assert report is not None and report.done and report.job_id != job.pk
    _assert_gone(blob_store, tenant.pk)
    assert _keys(blob_store, globex.pk) == other_keys


@pytest.mark.django_db
def test_the_task_chains_itself_and_is_quiet_for_a_gone_tenant(reg, tenant, blob_store, settings, monkeypatch):
    reg.push_image("app", "1", [b"layer"])
    settings.GATEWAY_TENANT_DELETE_BATCH_SIZE = 2
    settings.GATEWAY_TENANT_DELETE_MAX_BATCHES = 1
    job = tenant_delete_start(tenant=tenant, actor="owner")
    queued: list[dict] = []
    monkeypatch.setattr(tenant_delete_task, "apply_async", lambda kwargs=None, **_: queued.append(kwargs))
    tenant_delete_task(tenant_id=tenant.pk, job_id=job.pk)
    while queued:
        tenant_delete_task(**queued.pop(0))
    _assert_gone(blob_store, tenant.pk)
    assert JobRun.objects.get(pk=job.pk).state == JobRun.State.SUCCEEDED
    assert tenant_delete_task(tenant_id=tenant.pk, job_id=job.pk) is None


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_purges_the_tenant(reg, tenant, globex, blob_store):
    _fill(reg, tenant)
    other_keys = _keys(blob_store, globex.pk)
    job = tenant_delete_start(tenant=tenant, actor="owner")
    queue = f"tenant-delete-test-{os.getpid()}-{time.monotonic_ns()}"
    log = tempfile.NamedTemporaryFile(prefix="wharf-tenant-delete-", suffix=".log", delete=False)  # noqa: SIM115 - read after
    worker = celery_worker(queue, log, GATEWAY_TENANT_DELETE_BATCH_SIZE="2", GATEWAY_TENANT_DELETE_MAX_BATCHES="2")
    try:
        tenant_delete_task.apply_async(kwargs={"tenant_id": tenant.pk, "job_id": job.pk}, queue=queue)
        done = _wait(lambda: JobRun.objects.filter(pk=job.pk, state="succeeded").exists(), 90)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    with open(log.name, errors="replace") as f:
        assert done, f.read()[-4000:]
    os.unlink(log.name)
    _assert_gone(blob_store, tenant.pk)
    assert _keys(blob_store, globex.pk) == other_keys
    assert JobRun.objects.get(pk=job.pk).counts["batches"] > 2  # more than one invocation: it chained


@pytest.mark.django_db
def test_start_queues_the_purge_by_name_after_commit(tenant, monkeypatch, django_capture_on_commit_callbacks):
    from gateway.celery import app

    sent: list[tuple] = []
    monkeypatch.setattr(jobs.current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = tenant_delete_start(tenant=tenant, actor="owner")
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert sent == [("gateway.tenants.delete", {"kwargs": {"tenant_id": tenant.pk, "job_id": job.pk}, "queue": "gc"})]
    app.loader.import_default_modules()
    assert tenant_delete_task.name in app.tasks and app.tasks[tenant_delete_task.name].acks_late
    entry = app.conf.beat_schedule["tenants-delete-resume"]
    assert entry["task"] in app.tasks and entry["options"]["queue"] == "gc"


@pytest.mark.django_db
def test_the_resume_sweep_requeues_every_deleting_tenant(tenant, globex, monkeypatch):
    from gateway.tasks import tenant_delete_resume_task

    tenant_delete_start(tenant=tenant, actor="owner")
    queued: list[dict] = []
    monkeypatch.setattr(tenant_delete_task, "apply_async", lambda kwargs=None, **_: queued.append(kwargs))
    assert tenant_delete_resume_task() == 1
    assert queued == [{"tenant_id": tenant.pk}]  # globex is active: never touched
    # Without a job id the purge continues the run tenant_delete_start opened.
    report = tenant_purge(tenant=Tenant.objects.get(pk=tenant.pk), max_batches=1)
    assert report is not None and report.job_id == JobRun.objects.get(kind="tenant_delete").pk
