"""Deleting a repository (services/repository_delete.py): out of the registry at once, emptied by a resumable job, blobs left to GC."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from gateway.core.errors import NotFound
from gateway.registry.models import Blob, BlobUpload, DeletedObject, JobRun, Manifest, Repository, RepositoryBlob, Tag
from gateway.registry.services.gc import gc_run_to_completion
from gateway.registry.services.repository_delete import repository_delete_run, repository_delete_start
from gateway.storage import keys
from tests.helpers import sha

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """The job's task is run here by hand: nothing is sent to a broker."""
    from gateway.registry.services import jobs

    monkeypatch.setattr(jobs, "job_enqueue", lambda **_: None)
    monkeypatch.setattr("gateway.registry.services.repository_delete.job_enqueue", lambda **_: None)


def _index(reg, repo: str, tag: str, children: list[tuple[str, bytes]]) -> str:
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI, "digest": d, "size": len(p)} for d, p in children],
        }
    ).encode()
    assert reg.push_manifest(repo, tag, payload, OCI_INDEX).status_code == 201
    return sha(payload)


def _run_all(tenant, job: JobRun, repository_id: int, **kwargs) -> int:
    """Invoke the job until it is done, as its task chain would; the number of invocations."""
    invocations = 0
    while True:
        report = repository_delete_run(tenant=tenant, job_id=job.pk, repository_id=repository_id, **kwargs)
        invocations += 1
        assert report is not None
        if report.done:
            return invocations


def _blob_key(tenant, data: bytes) -> str:
    return Blob.objects.get(tenant=tenant, digest=sha(data)).storage_key


@pytest.mark.django_db
def test_the_job_empties_the_repository_in_batches_and_gc_frees_only_unshared_blobs(reg, tenant, blob_store):
    app_digest, app_payload = reg.push_image("app", "v1", [b"shared-layer", b"own-layer"])
    other_digest, _ = reg.push_image("other", "v1", [b"shared-layer"])
    child_digest, child_payload = reg.push_image("app", "arm", [b"arm-layer"])
    index_digest = _index(reg, "app", "multi", [(app_digest, app_payload), (child_digest, child_payload)])
    assert reg.post("/v2/acme/app/blobs/uploads/").status_code == 202  # an open upload session
    own_key, shared_key = _blob_key(tenant, b"own-layer"), _blob_key(tenant, b"shared-layer")
    repo = Repository.objects.get(tenant=tenant, name="app")
    manifest_keys = [keys.manifest_key(tenant.pk, "app", d) for d in (app_digest, child_digest, index_digest)]
    tag_keys = [keys.tag_key(tenant.pk, "app", t) for t in ("v1", "arm", "multi")]
    assert all(blob_store.stat(k) is not None for k in manifest_keys + tag_keys)
    listed = {o.key: o.size for o in blob_store.list(keys.tenant_prefix(tenant.pk))}
    since = {keys.manifest_key(tenant.pk, "app", m.digest): m.created_at for m in Manifest.objects.filter(repository=repo)}
    since |= {keys.tag_key(tenant.pk, "app", t.name): t.last_pushed_at for t in Tag.objects.filter(repository=repo)}

    job = repository_delete_start(tenant=tenant, name="app", actor="owner")
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 404
    invocations = _run_all(tenant, job, repo.pk, batch_size=1, max_batches=2)

    assert invocations > 3  # one batch of one row at a time: resumed again and again
    assert not Repository.objects.filter(pk=repo.pk).exists()
    assert not BlobUpload.objects.filter(repository_id=repo.pk).exists()
    job.refresh_from_db()
    assert job.state == JobRun.State.SUCCEEDED and job.finished_at and job.errors == []
    counts = job.counts
    assert counts["tags_deleted"] == 3 and counts["manifests_deleted"] == 3 and counts["uploads_cancelled"] == 1
    assert counts["blob_links_deleted"] == 4 and counts["repository_deleted"] == 1  # the one config and three layers
    assert counts["objects_deleted"] == 6
    assert [k for k in manifest_keys + tag_keys if blob_store.stat(k) is not None] == []
    # Each manifest and tag object in the deletion ledger: its size as listed, since its push.
    ledger = {key: (size, at) for key, size, at in DeletedObject.objects.values_list("key", "size", "stored_since")}
    assert ledger == {k: (listed[k], since[k]) for k in manifest_keys + tag_keys}
    # The other repository is untouched, and GC now frees what only the deleted one used.
    report = gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    assert report is not None and report.done
    assert not Blob.objects.filter(tenant=tenant, digest__in=[sha(b"own-layer"), sha(b"arm-layer")]).exists()
    assert blob_store.stat(own_key) is None
    assert blob_store.stat(shared_key) is not None
    r = reg.get(f"/v2/acme/other/manifests/{other_digest}", HTTP_ACCEPT=OCI)
    assert r.status_code == 200
    assert reg.get(f"/v2/acme/other/blobs/{sha(b'shared-layer')}").status_code in (200, 307)


@pytest.mark.django_db
def test_a_push_to_the_same_name_while_the_job_runs_is_left_alone(reg, tenant, blob_store):
    digest, payload = reg.push_image("app", "v1", [b"layer"])
    repo = Repository.objects.get(tenant=tenant, name="app")
    job = repository_delete_start(tenant=tenant, name="app")
    # The same image again under the same name: the same manifest key as the one the job deletes.
    assert reg.push_image("app", "v1", [b"layer"]) == (digest, payload)
    fresh = Repository.objects.get(tenant=tenant, name="app")
    assert fresh.pk != repo.pk and fresh.deleted_name == ""
    _run_all(tenant, job, repo.pk)
    job.refresh_from_db()
    assert job.state == JobRun.State.SUCCEEDED and job.counts["objects_kept"] == 2  # its manifest and tag objects
    assert blob_store.stat(keys.manifest_key(tenant.pk, "app", digest)) is not None
    assert Tag.objects.filter(repository=fresh, name="v1").exists()
    assert RepositoryBlob.objects.filter(repository=fresh).count() == 2
    gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    r = reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
    assert r.status_code == 200 and r.content == payload
    assert reg.get(f"/v2/acme/app/blobs/{sha(b'layer')}").status_code in (200, 307)


@pytest.mark.django_db
def test_a_finished_or_unknown_job_does_nothing_and_unknown_names_are_not_found(reg, tenant):
    reg.push_image("app", "v1", [b"layer"])
    repo = Repository.objects.get(tenant=tenant, name="app")
    job = repository_delete_start(tenant=tenant, name="app")
    _run_all(tenant, job, repo.pk)
    assert repository_delete_run(tenant=tenant, job_id=job.pk, repository_id=repo.pk) is None  # a redelivered task
    assert repository_delete_run(tenant=tenant, job_id=999999, repository_id=repo.pk) is None
    with pytest.raises(NotFound):
        repository_delete_start(tenant=tenant, name="app")
    with pytest.raises(NotFound):
        repository_delete_start(tenant=tenant, name=f"_deleted/{repo.pk}")


@pytest.mark.django_db
def test_gc_leaves_the_manifests_of_a_repository_being_deleted_to_its_job(reg, tenant, blob_store):
    digest, _ = reg.push_image("app", "v1", [b"layer"])
    untagged, _ = reg.push_image("app", "tmp", [b"tmp-layer"])
    assert reg.delete("/v2/acme/app/manifests/tmp").status_code == 202  # now an untagged manifest: GC's to take
    repo = Repository.objects.get(tenant=tenant, name="app")
    job = repository_delete_start(tenant=tenant, name="app")
    gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    assert Manifest.objects.filter(repository=repo, digest=untagged).exists()  # its key is the job's to delete, by the old name
    _run_all(tenant, job, repo.pk)
    assert blob_store.stat(keys.manifest_key(tenant.pk, "app", untagged)) is None
    assert blob_store.stat(keys.manifest_key(tenant.pk, "app", digest)) is None


@pytest.mark.django_db
def test_a_run_closed_before_the_repository_was_empty_is_taken_over_by_a_new_one(reg, tenant):
    reg.push_image("app", "v1", [b"layer"])
    reg.push_image("app", "v2", [b"layer-2"])
    repo = Repository.objects.get(tenant=tenant, name="app")
    job = repository_delete_start(tenant=tenant, name="app")
    first = repository_delete_run(tenant=tenant, job_id=job.pk, repository_id=repo.pk, batch_size=1, max_batches=1)
    assert first is not None and not first.done
    JobRun.objects.filter(pk=job.pk).update(state=JobRun.State.FAILED)  # as the stale-job closer would, while the task waits
    report = repository_delete_run(tenant=tenant, job_id=job.pk, repository_id=repo.pk)  # the redelivered task
    assert report is not None and report.done and report.job_id != job.pk
    new = JobRun.objects.get(pk=report.job_id)
    assert new.state == JobRun.State.SUCCEEDED and new.target == "app" and new.counts["takes_over_run"] == job.pk
    assert new.counts["tags_deleted"] == 1 and new.counts["repository_deleted"] == 1
    assert not Repository.objects.filter(pk=repo.pk).exists()
    assert repository_delete_run(tenant=tenant, job_id=job.pk, repository_id=repo.pk) is None  # once gone: nothing more
