"""Online garbage collection: exactly the unreferenced rows and objects go, everything referenced stays.

Real PostgreSQL, Redis and SeaweedFS (with the Storj guard) throughout; pushes go through /v2/.
The concurrency tests run pushes and GC in threads on separate database connections; the last
tests run real `celery worker` and `manage.py gc` processes and kill one half-way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway.registry import locks
from gateway.registry.models import Blob, DeletedObject, JobRun, Manifest, ManifestBlob, ObjectDeletion, RepositoryBlob, Tag
from gateway.registry.services.deletions import DeletionItem, object_deletions_record
from gateway.registry.services.gc import gc_run, gc_run_to_completion
from gateway.storage import keys
from gateway.tasks import gc_tenant_task
from tests.helpers import Reg, basic, celery_worker, command, manage, sha

ATTEMPTS = 100  # a push whose fresh blobs GC takes (grace 0) is retried, as a client would
OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = b"{}"


@pytest.fixture(autouse=True)
def _grace_zero(settings):
    # Tests collect garbage at once; the 24 h default is checked in test_the_default_grace_is_a_day.
    settings.GATEWAY_GC_GRACE_SECONDS = 0


# -- helpers ------------------------------------------------------------------------------------------


def config(name: str) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()


def image_doc(cfg: tuple[str, int], layers: list[tuple[str, int]], **extra) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n} for d, n in layers],
        **extra,
    }
    return json.dumps(doc).encode()


def push_image(reg: Reg, repo: str, ref: str | None, layers: list[bytes], cfg: bytes, **extra) -> tuple[str, bytes]:
    """Push blobs and the manifest (by tag, or by digest when ref is None); returns (digest, payload)."""
    c = reg.push_blob(repo, cfg)
    ls = [(reg.push_blob(repo, layer), len(layer)) for layer in layers]
    payload = image_doc((c, len(cfg)), ls, **extra)
    r = reg.push_manifest(repo, ref or sha(payload), payload, OCI)
    assert r.status_code == 201, r.content
    return sha(payload), payload


def index_doc(children: list[tuple[str, bytes]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI, "digest": d, "size": len(p), "platform": {"architecture": "amd64", "os": "linux"}}
                for d, p in children
            ],
        }
    ).encode()


def blob_bytes(reg: Reg, repo: str, digest: str) -> bytes | None:
    r = reg.get(f"/v2/acme/{repo}/blobs/{digest}")
    if r.status_code != 200:
        return None
    return b"".join(r.streaming_content) if r.streaming else r.content


def pulls_back(reg: Reg, repo: str, ref: str, payload: bytes, blobs: list[bytes]) -> None:
    """The manifest and every blob come back byte-identical."""
    r = reg.get(f"/v2/acme/{repo}/manifests/{ref}", HTTP_ACCEPT=f"{OCI}, {OCI_INDEX}")
    assert r.status_code == 200 and r.content == payload, (repo, ref, r.status_code)
    for data in blobs:
        assert blob_bytes(reg, repo, sha(data)) == data, (repo, ref, sha(data))


def exists(store, key: str) -> bool:
    return store.stat(key) is not None


def blob_keys(tenant, digest: str) -> tuple[str, str]:
    b = Blob.objects.get(tenant=tenant, digest=digest)
    return b.storage_key, keys.blob_index_key(tenant.pk, digest)


def collect(tenant, **kwargs):
    report = gc_run_to_completion(tenant=tenant, **kwargs)
    assert report is not None and report.done, report
    return report


# -- what goes and what stays ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_gc_deletes_exactly_the_unreferenced_blobs_and_manifests(reg, tenant, blob_store):
    shared = b"shared layer bytes"
    a, a_payload = push_image(reg, "app", "a", [shared, b"only in a"], config("a"))
    b, b_payload = push_image(reg, "app", "b", [shared, b"only in b"], config("b"))
    c, c_payload = push_image(reg, "app", "c", [shared, b"only in c"], config("c"))
    assert reg.delete("/v2/acme/app/manifests/c").status_code == 202  # untagged: garbage
    orphan = reg.push_blob("app", b"uploaded, never referenced")
    # An index (tagged) keeps its children, which were pushed by digest.
    m1, m1_payload = push_image(reg, "app", None, [b"arm64 layer"], config("m1"))
    m2, m2_payload = push_image(reg, "app", None, [b"amd64 layer"], config("m2"))
    idx_payload = index_doc([(m1, m1_payload), (m2, m2_payload)])
    assert reg.push_manifest("app", "multi", idx_payload, OCI_INDEX).status_code == 201
    lonely, _ = push_image(reg, "app", None, [b"lonely layer"], config("lonely"))
    # Referrers: one of a live image (kept), one of the untagged image c (garbage).
    reg.push_blob("app", EMPTY)
    sbom_a, sbom_c = b'{"sbom": "a"}', b'{"sbom": "c"}'
    ref_a, ref_a_payload = push_image(
        reg,
        "app",
        None,
        [sbom_a],
        EMPTY,
        artifactType="application/vnd.example.sbom",
        subject={"mediaType": OCI, "digest": a, "size": len(a_payload)},
    )
    ref_c, _ = push_image(
        reg,
        "app",
        None,
        [sbom_c],
        EMPTY,
        artifactType="application/vnd.example.sbom",
        subject={"mediaType": OCI, "digest": c, "size": len(c_payload)},
    )
    # A second repository holding the same layer as c's unique one keeps that blob alive.
    push_image(reg, "other", "x", [b"only in c"], config("x"))

    garbage_manifests = {c, lonely, ref_c}
    garbage_blobs = {sha(config("c")), sha(config("lonely")), sha(b"lonely layer"), sha(sbom_c), orphan}
    before_blobs = {b.digest: b for b in Blob.objects.filter(tenant=tenant)}
    garbage_keys = [k for d in garbage_blobs for k in blob_keys(tenant, d)]
    garbage_keys += [keys.manifest_key(tenant.pk, "app", d) for d in garbage_manifests]
    assert all(exists(blob_store, k) for k in garbage_keys)

    report = collect(tenant)

    remaining = set(Manifest.objects.filter(tenant=tenant, repository__name="app").values_list("digest", flat=True))
    assert remaining == {a, b, m1, m2, sha(idx_payload), ref_a}
    assert set(Blob.objects.filter(tenant=tenant).values_list("digest", flat=True)) == set(before_blobs) - garbage_blobs
    assert not RepositoryBlob.objects.filter(tenant=tenant, blob__digest__in=garbage_blobs).exists()
    assert [k for k in garbage_keys if exists(blob_store, k)] == []
    for blob in Blob.objects.filter(tenant=tenant):
        assert blob_store.stat(blob.storage_key).size == blob.size
        assert exists(blob_store, keys.blob_index_key(tenant.pk, blob.digest))
    for m in Manifest.objects.filter(tenant=tenant).select_related("repository"):
        assert exists(blob_store, keys.manifest_key(tenant.pk, m.repository.name, m.digest))
    assert not ObjectDeletion.objects.filter(tenant=tenant).exists()

    assert report.counts["manifests_deleted"] == 3 and report.counts["blobs_deleted"] == 5
    freed = sum(before_blobs[d].size for d in garbage_blobs)
    assert report.bytes_freed >= freed
    job = JobRun.objects.get(pk=report.job_id)
    assert job.kind == "gc" and job.state == JobRun.State.SUCCEEDED and job.finished_at is not None
    assert job.counts["blobs_deleted"] == 5 and job.counts["manifests_deleted"] == 3 and job.bytes_freed == report.bytes_freed

    # Everything referenced still pulls back byte-identical.
    pulls_back(reg, "app", "a", a_payload, [shared, b"only in a", config("a")])
    pulls_back(reg, "app", "b", b_payload, [shared, b"only in b", config("b")])
    pulls_back(reg, "app", "multi", idx_payload, [])
    pulls_back(reg, "app", m1, m1_payload, [b"arm64 layer", config("m1")])
    pulls_back(reg, "app", ref_a, ref_a_payload, [sbom_a, EMPTY])
    assert blob_bytes(reg, "other", sha(b"only in c")) == b"only in c"
    assert reg.get(f"/v2/acme/app/referrers/{a}").json()["manifests"][0]["digest"] == ref_a

    # Idempotent: a second run finds nothing.
    again = collect(tenant)
    assert again.counts.get("manifests_deleted", 0) == 0 and again.counts.get("blobs_deleted", 0) == 0


@pytest.mark.django_db
def test_a_deleted_index_frees_its_children_in_one_run(reg, tenant, blob_store):
    m1, m1_payload = push_image(reg, "app", None, [b"child one"], config("c1"))
    m2, m2_payload = push_image(reg, "app", None, [b"child two"], config("c2"))
    idx = index_doc([(m1, m1_payload), (m2, m2_payload)])
    assert reg.push_manifest("app", "multi", idx, OCI_INDEX).status_code == 201
    keep, keep_payload = push_image(reg, "app", "keep", [b"child one"], config("keep"))  # shares a layer with m1
    assert reg.delete("/v2/acme/app/manifests/multi").status_code == 202
    collect(tenant)
    assert set(Manifest.objects.filter(tenant=tenant).values_list("digest", flat=True)) == {keep}
    assert set(Blob.objects.filter(tenant=tenant).values_list("digest", flat=True)) == {sha(b"child one"), sha(config("keep"))}
    pulls_back(reg, "app", "keep", keep_payload, [b"child one", config("keep")])


@pytest.mark.django_db
def test_grace_period_keeps_garbage_until_it_has_been_unreferenced_long_enough(reg, tenant, settings):
    settings.GATEWAY_GC_GRACE_SECONDS = 3600
    d, _ = push_image(reg, "app", "old", [b"old layer"], config("old"))
    assert reg.delete("/v2/acme/app/manifests/old").status_code == 202
    first = collect(tenant)
    assert first.counts["manifests_marked"] == 1 and first.counts["blobs_marked"] == 2
    assert first.counts.get("manifests_deleted", 0) == 0 and Manifest.objects.filter(digest=d).exists()
    # Half the grace later: still kept.
    Manifest.objects.filter(digest=d).update(gc_candidate_since=timezone.now() - timedelta(minutes=30))
    Blob.objects.filter(tenant=tenant).update(gc_candidate_since=timezone.now() - timedelta(minutes=30))
    assert collect(tenant).counts.get("manifests_deleted", 0) == 0
    # Pushing the same image again (tag and blobs) starts the grace over.
    push_image(reg, "app", "old", [b"old layer"], config("old"))
    assert Manifest.objects.get(digest=d).gc_candidate_since is None
    assert not Blob.objects.filter(tenant=tenant, gc_candidate_since__isnull=False).exists()
    assert reg.delete("/v2/acme/app/manifests/old").status_code == 202
    # Unreferenced for longer than the grace period: gone.
    collect(tenant)
    Manifest.objects.filter(digest=d).update(gc_candidate_since=timezone.now() - timedelta(hours=2))
    Blob.objects.filter(tenant=tenant).update(gc_candidate_since=timezone.now() - timedelta(hours=2))
    report = collect(tenant)
    assert report.counts["manifests_deleted"] == 1 and report.counts["blobs_deleted"] == 2
    assert not Blob.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_linking_a_marked_blob_again_restarts_its_grace(reg, tenant, settings):
    settings.GATEWAY_GC_GRACE_SECONDS = 3600
    digest = reg.push_blob("app", b"reused later")
    collect(tenant)
    Blob.objects.filter(digest=digest).update(gc_candidate_since=timezone.now() - timedelta(hours=5))
    # A push of the same bytes into another repository links the existing blob (deduplicated) and unmarks it.
    assert reg.push_blob("second", b"reused later") == digest
    assert Blob.objects.get(digest=digest).gc_candidate_since is None
    assert collect(tenant).counts.get("blobs_deleted", 0) == 0


@pytest.mark.django_db
def test_a_retention_policy_keeps_untagged_manifests_for_its_days(reg, tenant):
    from gateway.registry.services.retention import retention_policy_set

    d, payload = push_image(reg, "app", None, [b"by digest"], config("digest-only"))
    retention_policy_set(tenant=tenant, untagged_days=7)
    assert collect(tenant).counts.get("manifests_deleted", 0) == 0
    pulls_back(reg, "app", d, payload, [b"by digest"])
    Manifest.objects.filter(digest=d).update(created_at=timezone.now() - timedelta(days=8))
    assert collect(tenant).counts["manifests_deleted"] == 1


@pytest.mark.django_db
def test_dry_run_lists_what_would_go_and_changes_nothing(reg, tenant, blob_store):
    c, _ = push_image(reg, "app", "c", [b"garbage layer"], config("c"))
    keep, _ = push_image(reg, "app", "keep", [b"kept layer"], config("keep"))
    assert reg.delete("/v2/acme/app/manifests/c").status_code == 202
    rows = (Manifest.objects.count(), Blob.objects.count(), list(Blob.objects.values_list("gc_candidate_since", flat=True)))
    report = collect(tenant, dry_run=True)
    assert report.dry_run and report.manifests == [{"repository": "app", "digest": c, "size": report.manifests[0]["size"]}]
    assert {b["digest"] for b in report.blobs} == {sha(b"garbage layer"), sha(config("c"))}
    assert report.counts["manifests_deleted"] == 1 and report.counts["blobs_deleted"] == 2
    assert (
        Manifest.objects.count(),
        Blob.objects.count(),
        list(Blob.objects.values_list("gc_candidate_since", flat=True)),
    ) == rows
    assert all(exists(blob_store, k) for k in blob_keys(tenant, sha(b"garbage layer")))
    assert JobRun.objects.get(pk=report.job_id).dry_run is True
    # The real run deletes exactly what the dry run listed.
    real = collect(tenant)
    assert real.counts["manifests_deleted"] == 1 and real.counts["blobs_deleted"] == 2
    assert set(Manifest.objects.values_list("digest", flat=True)) == {keep}


@pytest.mark.django_db
def test_objects_recorded_by_a_killed_run_are_deleted_by_the_next(reg, tenant, blob_store):
    """Rows deleted and committed, the worker killed before DeleteObjects: the record survives, the next run deletes."""
    digest = reg.push_blob("app", b"doomed bytes")
    data_key, index_key = blob_keys(tenant, digest)
    with transaction.atomic():  # exactly what the sweep commits before it drains
        blob = Blob.objects.get(digest=digest)
        RepositoryBlob.objects.filter(blob=blob).delete()
        blob.delete()
        index_size = keys.blob_index_size(digest, blob.size, blob.storage_key)
        object_deletions_record(
            tenant=tenant,
            items=[
                DeletionItem("data", data_key, "", digest, blob.size, blob.created_at),
                DeletionItem("index", index_key, "", digest, index_size, blob.created_at),
                # The same object recorded twice (two sweeps, or a drain retried): deleted again, billed once.
                DeletionItem("data", data_key, "", digest, blob.size, blob.created_at),
            ],
        )
    assert exists(blob_store, data_key) and exists(blob_store, index_key)
    report = collect(tenant)
    assert report.counts["objects_deleted"] == 2
    assert not exists(blob_store, data_key) and not exists(blob_store, index_key)
    assert not ObjectDeletion.objects.exists()
    ledger = sorted(DeletedObject.objects.values_list("kind", "key", "size", "stored_since"))
    assert ledger == [("data", data_key, 12, blob.created_at), ("index", index_key, index_size, blob.created_at)]
    assert collect(tenant).counts.get("objects_deleted", 0) == 0 and DeletedObject.objects.count() == 2


@pytest.mark.django_db
def test_the_drain_keeps_an_object_whose_digest_was_pushed_again(reg, tenant, blob_store):
    push_image(reg, "app", "v1", [b"comes back"], config("back"))
    digest = sha(b"comes back")
    _, index_key = blob_keys(tenant, digest)
    # A stale record for the index object of a digest that exists (pushed again after a GC).
    ObjectDeletion.objects.create(tenant=tenant, kind="index", key=index_key, reference=digest)
    report = collect(tenant)
    assert report.counts["objects_kept"] >= 1 and exists(blob_store, index_key)
    assert blob_bytes(reg, "app", digest) == b"comes back"


@pytest.mark.django_db
def test_mark_makes_no_query_per_row(reg, tenant):
    from gateway.registry.services.gc import gc_mark

    def queries_for_mark() -> int:
        with CaptureQueriesContext(connection) as ctx:
            gc_mark(tenant=tenant, now=timezone.now())
        return len(ctx.captured_queries)

    push_image(reg, "app", "one", [b"l1"], config("one"))
    small = queries_for_mark()
    for i in range(6):
        push_image(reg, "app", f"t{i}", [f"layer {i}".encode(), f"more {i}".encode()], config(f"t{i}"))
        reg.push_blob("app", f"orphan {i}".encode())
    assert queries_for_mark() == small == 8


@pytest.mark.django_db
def test_the_default_grace_is_a_day_and_bad_values_stop_startup():
    show = "from django.conf import settings as s; print(s.GATEWAY_GC_GRACE_SECONDS, s.GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS)"
    r = manage("shell", "-c", show)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1].split() == ["86400", "86400"], r.stderr
    r = manage("shell", "-c", show, GATEWAY_GC_GRACE_SECONDS="-1")
    assert r.returncode != 0 and "GATEWAY_GC_GRACE_SECONDS must be between 0 and" in r.stderr
    r = manage("shell", "-c", show, GATEWAY_GC_BATCH_SIZE="5000")
    assert r.returncode != 0 and "GATEWAY_GC_BATCH_SIZE must be between 1 and 1000" in r.stderr


@pytest.mark.django_db
def test_the_task_called_directly_runs_one_bounded_invocation(reg, tenant, settings):
    garbage = _make_garbage(reg, 4)
    assert gc_tenant_task(tenant_id=tenant.pk)["blobs_deleted"] == 4
    assert gc_tenant_task(tenant_id=999_999_999) is None  # gone tenant: quiet
    # At the invocation cap with work left, the chain stops and says so (the next scheduled run continues).
    settings.GATEWAY_GC_BATCH_SIZE, settings.GATEWAY_GC_MAX_BATCHES = 1, 1
    more = _make_garbage(reg, 3, prefix="more")
    counts = gc_tenant_task(tenant_id=tenant.pk, requeues_left=0)
    assert counts["blobs_deleted"] == 1
    job = JobRun.objects.filter(kind="gc", tenant=tenant).latest("pk")
    assert job.state == JobRun.State.SUCCEEDED and job.counts["stopped_at_cap"] == 1
    assert Blob.objects.filter(digest__in=more).count() == 2 and not Blob.objects.filter(digest__in=garbage).exists()


@pytest.mark.django_db
def test_bad_arguments_are_clear_errors(tenant):
    with pytest.raises(ValueError, match="batch_size must be between 1 and 1000"):
        gc_run(tenant=tenant, batch_size=5000)
    with pytest.raises(ValueError, match="grace must not be negative"):
        gc_run(tenant=tenant, grace=timedelta(seconds=-1))
    r = command("gc", "--tenant", "nope")
    assert r.returncode != 0 and "no tenant with slug 'nope'" in r.stderr


# -- locking: a push and GC on the same row -----------------------------------------------------------------


def _in_thread(fn):
    """Run fn in a thread with its own database connection; returns (thread, result holder)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            out["error"] = exc
        finally:
            connections.close_all()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _gc_deletes_blob_while_holding_lock(tenant, digest: str, locked: threading.Event, hold: float):
    """What the sweep does to one blob: FOR UPDATE, delete rows, hold the lock a moment, commit."""

    def run():
        with transaction.atomic():
            blob = Blob.objects.get(tenant=tenant, digest=digest)
            rows = locks.blobs_for_delete(tenant=tenant, ids=[blob.pk])
            assert rows
            RepositoryBlob.objects.filter(blob=blob).delete()
            Blob.objects.filter(pk=blob.pk).delete()
            locked.set()
            time.sleep(hold)
        return True

    return run


@pytest.mark.django_db(transaction=True)
def test_dedup_upload_whose_blob_gc_deletes_meanwhile_stores_its_own_copy(reg, tenant, blob_store):
    """The old order discarded the session's bytes and then linked a blob GC was deleting: the push was lost."""
    data = b"x" * 1000
    digest = reg.push_blob("app", data)
    old_key, _ = blob_keys(tenant, digest)
    locked = threading.Event()
    t, out = _in_thread(_gc_deletes_blob_while_holding_lock(tenant, digest, locked, hold=0.5))
    assert locked.wait(10)
    # A chunked upload of the same bytes to another repository: its commit finds the row locked, waits,
    # sees it gone once GC commits, and stores its own copy instead of linking a deleted blob.
    r = reg.post("/v2/acme/second/blobs/uploads/")
    assert r.status_code == 202
    r = reg.put(f"{r['Location']}?digest={digest}", data)
    t.join(10)
    assert "error" not in out, out
    assert r.status_code == 201, r.content
    blob = Blob.objects.get(tenant=tenant, digest=digest)
    assert blob.storage_key != old_key and blob_store.stat(blob.storage_key).size == len(data)
    assert blob_bytes(reg, "second", digest) == data
    assert json.loads(blob_store.read_small(keys.blob_index_key(tenant.pk, digest)))["key"] == blob.storage_key


@pytest.mark.django_db(transaction=True)
def test_manifest_push_racing_gc_fails_cleanly_not_half_written(reg, tenant):
    layer = b"layer gc takes"
    c = reg.push_blob("app", config("race"))
    layer_digest = reg.push_blob("app", layer)
    payload = image_doc((c, len(config("race"))), [(layer_digest, len(layer))])
    locked = threading.Event()
    t, out = _in_thread(_gc_deletes_blob_while_holding_lock(tenant, layer_digest, locked, hold=0.5))
    assert locked.wait(10)
    r = reg.push_manifest("app", "v1", payload, OCI)
    t.join(10)
    assert "error" not in out, out
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", r.content
    assert not Manifest.objects.filter(tenant=tenant).exists() and not Tag.objects.filter(tenant=tenant).exists()
    # The client pushes the blob again and succeeds.
    reg.push_blob("app", layer)
    assert reg.push_manifest("app", "v1", payload, OCI).status_code == 201
    pulls_back(reg, "app", "v1", payload, [layer, config("race")])


@pytest.mark.django_db(transaction=True)
def test_gc_skips_a_blob_a_push_holds(reg, tenant):
    digest = reg.push_blob("app", b"held by a push")
    held, release = threading.Event(), threading.Event()

    def push_holds_it():
        with transaction.atomic():
            assert locks.blob_share(tenant=tenant, digest=digest) is not None  # what a linking push holds
            held.set()
            release.wait(10)

    t, out = _in_thread(push_holds_it)
    assert held.wait(10)
    report = gc_run(tenant=tenant)
    release.set()
    t.join(10)
    assert "error" not in out, out
    assert report.counts["blobs_skipped_locked"] == 1 and report.counts.get("blobs_deleted", 0) == 0
    assert Blob.objects.filter(digest=digest).exists()
    assert collect(tenant).counts["blobs_deleted"] == 1  # once released, it goes


@pytest.mark.django_db(transaction=True)
def test_concurrent_pushes_while_gc_loops_with_zero_grace_lose_nothing(tenant, owner_token, blob_store, rng):
    """Pushes in threads (shared layers, moving tags that leave garbage) while GC runs in a loop with grace 0.

    A push may be refused (MANIFEST_BLOB_UNKNOWN: GC took a blob between its upload and the
    manifest, as it may with no grace) and is then retried like a client would; every image
    whose push succeeded and is still tagged pulls back byte-identical, and at the end exactly
    the unreferenced rows and objects are gone. The GC pauses come from `rng` (seeded, printed).
    """
    pool = [f"shared layer {i} ".encode() * 50 for i in range(4)]
    threads, images_per_thread = 4, 5
    stop = threading.Event()
    pushed: dict[tuple[str, str], tuple[bytes, list[bytes]]] = {}
    stats = {"retries": 0, "gc_runs": 0, "deleted": 0}
    lock = threading.Lock()

    def pusher(n: int):
        reg = Reg(Client(), basic("owner", owner_token))
        for i in range(images_per_thread):
            layers = [pool[(n + i) % len(pool)], pool[(n + 2 * i + 1) % len(pool)], f"unique {n}-{i}".encode() * 20]
            cfg = config(f"{n}-{i}")
            for _attempt in range(ATTEMPTS):
                try:
                    c = reg.push_blob("app", cfg)
                    # Half the layers go through POST+PUT (the session-commit path), half monolithic.
                    ls = []
                    for j, layer in enumerate(layers):
                        if j % 2:
                            r = reg.post("/v2/acme/app/blobs/uploads/")
                            r = reg.put(f"{r['Location']}?digest={sha(layer)}", layer)
                            assert r.status_code == 201, r.content
                        else:
                            reg.push_blob("app", layer)
                        ls.append((sha(layer), len(layer)))
                except AssertionError:
                    with lock:
                        stats["retries"] += 1
                    continue
                payload = image_doc((c, len(cfg)), ls)
                # Every image lands on the moving tag (leaving the previous one as garbage); every other one is kept.
                r = reg.push_manifest("app", f"cur-{n}", payload, OCI)
                if r.status_code != 201:
                    assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", r.content
                    with lock:
                        stats["retries"] += 1
                    continue
                with lock:
                    pushed[("cur", str(n))] = (payload, layers + [cfg])
                if i % 2 == 0:
                    assert reg.push_manifest("app", f"keep-{n}-{i}", payload, OCI).status_code == 201
                    with lock:
                        pushed[(f"keep-{n}-{i}", "")] = (payload, layers + [cfg])
                break
            else:
                raise AssertionError(f"image {n}-{i} could not be pushed in {ATTEMPTS} attempts")

    def collector():
        while not stop.is_set():
            report = gc_run(tenant=tenant, grace=timedelta(0))
            if report is not None:
                with lock:
                    stats["gc_runs"] += 1
                    stats["deleted"] += report.counts.get("blobs_deleted", 0) + report.counts.get("manifests_deleted", 0)
            # Back-to-back runs, a few per push on average (a push takes about 0.1-0.2 s here).
            time.sleep(rng.uniform(0.02, 0.2))

    gc_thread, gc_out = _in_thread(collector)
    workers = [_in_thread(lambda n=n: pusher(n)) for n in range(threads)]
    for t, _out in workers:
        t.join(300)
    stop.set()
    gc_thread.join(60)
    assert "error" not in gc_out, gc_out
    for _, out in workers:
        assert "error" not in out, out["error"]
    assert stats["gc_runs"] >= 3 and stats["deleted"] > 0, stats

    reg = Reg(Client(), basic("owner", owner_token))
    for (name, n), (payload, blobs) in pushed.items():
        ref = f"cur-{n}" if name == "cur" else name
        pulls_back(reg, "app", ref, payload, blobs)

    # Quiesced: one more run leaves exactly what the tags reach, and every row's objects exist.
    collect(tenant)
    tagged = set(Tag.objects.filter(tenant=tenant).values_list("manifest_id", flat=True))
    assert set(Manifest.objects.filter(tenant=tenant).values_list("pk", flat=True)) == tagged
    referenced = set(ManifestBlob.objects.filter(manifest_id__in=tagged).values_list("blob_id", flat=True))
    assert set(Blob.objects.filter(tenant=tenant).values_list("pk", flat=True)) == referenced
    for blob in Blob.objects.filter(tenant=tenant):
        assert blob_store.stat(blob.storage_key).size == blob.size
    assert not ObjectDeletion.objects.filter(tenant=tenant).exists()


# -- real processes: a Celery worker, manage.py gc, a kill half-way ----------------------------------------------


def _stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: str) -> str:
    with open(path, errors="replace") as f:
        return "process log:\n" + f.read()[-4000:]


def _forget_queue(client, queue: str) -> None:
    """Drop the killed worker's unacknowledged message (redelivered only after an hour) and the test queue from the broker."""
    for tag, raw in client.hgetall("unacked").items():
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.delete(queue)


def _make_garbage(reg: Reg, n: int, prefix: str = "garbage") -> set[str]:
    return {reg.push_blob("app", f"{prefix} blob {i}".encode()) for i in range(n)}


def _digests(n: int, prefix: str = "garbage") -> list[str]:
    """The digests `_make_garbage` pushes, in order."""
    return [sha(f"{prefix} blob {i}".encode()) for i in range(n)]


def _wait(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_gc_chain(reg, tenant, blob_store):
    """`.apply_async()` to the real broker, a real worker: the chain re-queues itself (1 batch per invocation) and finishes one job."""
    _, keep_payload = push_image(reg, "app", "keep", [b"kept"], config("keep"))
    garbage = _make_garbage(reg, 12)
    garbage_keys = [k for d in garbage for k in blob_keys(tenant, d)]
    queue = f"gc-test-{os.getpid()}-{time.monotonic_ns()}"
    log = tempfile.NamedTemporaryFile(prefix="wharf-gc-worker-", suffix=".log", delete=False)  # noqa: SIM115 - read after the worker
    worker = celery_worker(queue, log, GATEWAY_GC_GRACE_SECONDS="0", GATEWAY_GC_BATCH_SIZE="5", GATEWAY_GC_MAX_BATCHES="2")
    try:
        gc_tenant_task.apply_async(kwargs={"tenant_id": tenant.pk}, queue=queue)
        assert _wait(lambda: JobRun.objects.filter(kind="gc", tenant=tenant, state="succeeded").exists(), 60), _tail(log.name)
    finally:
        _stop(worker)
        log.close()
    job = JobRun.objects.get(kind="gc", tenant=tenant)
    assert job.counts["blobs_deleted"] == 12 and job.counts["objects_deleted"] == 24 and job.task_id
    assert not Blob.objects.filter(digest__in=garbage).exists()
    assert [k for k in garbage_keys if exists(blob_store, k)] == []
    pulls_back(reg, "app", "keep", keep_payload, [b"kept", config("keep")])
    os.unlink(log.name)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_half_way_and_rerun_finishes_correctly(reg, tenant, blob_store, redis_client):
    _, keep_payload = push_image(reg, "app", "keep", [b"kept"], config("keep"))
    garbage = _make_garbage(reg, 150)
    garbage_keys = {d: blob_keys(tenant, d) for d in garbage}
    queue = f"gc-test-{os.getpid()}-{time.monotonic_ns()}"
    log = tempfile.NamedTemporaryFile(prefix="wharf-gc-worker-", suffix=".log", delete=False)  # noqa: SIM115 - read after the worker
    env = {"GATEWAY_GC_GRACE_SECONDS": "0", "GATEWAY_GC_BATCH_SIZE": "1", "GATEWAY_GC_MAX_BATCHES": "100000"}
    worker = celery_worker(queue, log, **env)
    try:
        gc_tenant_task.apply_async(kwargs={"tenant_id": tenant.pk}, queue=queue)
        assert _wait(lambda: Blob.objects.filter(digest__in=garbage).count() < 140, 60, step=0.01), _tail(log.name)
        _stop(worker, signal.SIGKILL)  # half-way: no warm shutdown, no cleanup
    finally:
        _stop(worker)
    left = Blob.objects.filter(digest__in=garbage).count()
    assert 0 < left < 150, left
    # Nothing half-done is lost: every deleted row's objects are either gone or recorded for deletion.
    recorded = set(ObjectDeletion.objects.filter(tenant=tenant).values_list("key", flat=True))
    deleted_rows = garbage - set(Blob.objects.filter(digest__in=garbage).values_list("digest", flat=True))
    for d in deleted_rows:
        for k in garbage_keys[d]:
            assert k in recorded or not exists(blob_store, k), k
    killed = JobRun.objects.get(kind="gc", tenant=tenant)
    assert killed.state == JobRun.State.RUNNING and killed.counts.get("blobs_deleted", 0) > 0  # what it did is recorded

    # Rerun (as beat would, on a fresh worker): it takes over and finishes.
    worker = celery_worker(queue, log, **env)
    try:
        gc_tenant_task.apply_async(kwargs={"tenant_id": tenant.pk}, queue=queue)
        assert _wait(lambda: JobRun.objects.filter(kind="gc", tenant=tenant, state="succeeded").exists(), 120), _tail(log.name)
    finally:
        _stop(worker)
        log.close()
    _forget_queue(redis_client, queue)
    killed.refresh_from_db()
    assert killed.state == JobRun.State.FAILED and "abandoned" in killed.errors[-1]["error"]
    assert not Blob.objects.filter(digest__in=garbage).exists()
    assert [k for ks in garbage_keys.values() for k in ks if exists(blob_store, k)] == []
    assert not ObjectDeletion.objects.filter(tenant=tenant).exists()
    # The deletion ledger: every garbage object exactly once (none lost by the kill, none doubled by the retried drain).
    ledgered = sorted(DeletedObject.objects.filter(tenant=tenant).values_list("key", flat=True))
    assert ledgered == sorted(k for ks in garbage_keys.values() for k in ks)
    sizes = dict(DeletedObject.objects.filter(tenant=tenant, kind="data").values_list("key", "size"))
    assert sizes == {garbage_keys[d][0]: len(f"garbage blob {i}") for i, d in enumerate(_digests(150))}
    pulls_back(reg, "app", "keep", keep_payload, [b"kept", config("keep")])
    os.unlink(log.name)


@pytest.mark.django_db(transaction=True)
def test_manage_gc_dry_run_then_real_run_prints_json(reg, tenant, blob_store):
    push_image(reg, "app", "keep", [b"kept"], config("keep"))
    garbage = _make_garbage(reg, 3)
    r = command("gc", "--tenant", "acme", "--dry-run")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["dry_run"] is True and {b["digest"] for b in doc["tenants"][0]["blobs"]} == garbage
    assert Blob.objects.filter(digest__in=garbage).count() == 3
    r = command("gc", "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["totals"]["blobs_deleted"] == 3 and doc["totals"]["objects_deleted"] == 6
    assert doc["tenants"][0]["done"] is True and doc["tenants"][0]["bucket"] == blob_store.bucket
    assert not Blob.objects.filter(digest__in=garbage).exists()


def test_gc_runs_hourly_from_the_beat_schedule_on_the_gc_queue():
    from gateway.celery import app

    app.loader.import_default_modules()
    for name, task_name in (
        ("gc-all", "gateway.gc.all"),
        ("retention-all", "gateway.retention.all"),
        ("uploads-cleanup-all", "gateway.uploads.cleanup_all"),
    ):
        entry = app.conf.beat_schedule[name]
        assert entry["task"] == task_name and task_name in app.tasks
        assert entry["options"]["queue"] == "gc"
    for task_name in ("gateway.gc.tenant", "gateway.retention.tenant", "gateway.uploads.cleanup", "gateway.gc.all"):
        assert app.tasks[task_name].wharf_queue == "gc" and app.tasks[task_name].acks_late
