"""Upload limits (decisions/0012): the storage quota under concurrent finishes, the per-tenant caps on
open sessions and carried tail bytes, and tails kept out of PostgreSQL (real PostgreSQL and SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from django.db import connections
from django.test import Client

from accounts.models import Tenant
from gateway.registry.models import Blob, BlobUpload
from gateway.storage import keys
from tests.helpers import Reg, basic, sha
from tests.registry.test_blobs import start

MiB = 1024 * 1024


def uploads_objects(store, tenant) -> set[str]:
    """Object keys under the tenant's uploads/ prefix (blob bytes and tail objects)."""
    return {o.key for o in store.list(keys.uploads_prefix(tenant.pk))}


def pending_multipart(store, tenant) -> list[str]:
    return [u.upload_id for u in store.list_multipart(keys.uploads_prefix(tenant.pk))]


def in_threads(n: int, fn) -> list:
    """Run fn(i) in n threads at once; each thread closes its own database connection."""
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = fn(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_finishes_cannot_exceed_the_storage_quota(tenant, owner_token, small_parts, blob_store):
    """Six 6 MiB pushes finishing at once against a 20 MiB quota: exactly three fit, the rest leave nothing."""
    quota, n, size = 20 * MiB, 6, 6 * MiB
    Tenant.objects.filter(pk=tenant.pk).update(storage_quota_bytes=quota)
    blobs = [os.urandom(size) for _ in range(n)]
    ready = threading.Barrier(n)

    def push(i: int):
        c = Reg(Client(), basic("owner", owner_token))
        loc = start(c)
        # One 5 MiB part in S3 (a pending multipart upload) and a 1 MiB tail object; then all finish together.
        assert c.patch(loc, blobs[i]).status_code == 202
        ready.wait(timeout=60)
        r = c.put(f"{loc}?digest={sha(blobs[i])}")
        return r.status_code, (r.json()["errors"][0] if r.status_code != 201 else None)

    results = in_threads(n, push)
    assert sorted(code for code, _ in results) == [201] * 3 + [403] * 3, results
    for code, error in results:
        if code == 403:
            assert error["code"] == "DENIED" and "storage quota" in error["message"] and error["detail"]["quota"] == "storage"
    stored = list(Blob.objects.filter(tenant=tenant))
    assert len(stored) == 3 and sum(b.size for b in stored) <= quota
    # The refused ones left no blob row, no object, no pending multipart upload and no tail object.
    assert uploads_objects(blob_store, tenant) == {b.storage_key for b in stored}
    assert pending_multipart(blob_store, tenant) == []
    assert BlobUpload.objects.filter(tenant=tenant, state=BlobUpload.State.CANCELLED).count() == 3
    c = Reg(Client(), basic("owner", owner_token))
    for b in stored:
        assert hashlib.sha256(b"".join(c.get(f"/v2/acme/app/blobs/{b.digest}").streaming_content)).hexdigest() == b.digest[7:]


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_cannot_pass_the_open_session_cap(tenant, owner_token, settings):
    settings.GATEWAY_UPLOAD_MAX_SESSIONS = 3
    ready = threading.Barrier(8)

    def open_one(i: int):
        c = Reg(Client(), basic("owner", owner_token))
        ready.wait(timeout=60)
        return c.post("/v2/acme/app/blobs/uploads/").status_code

    assert sorted(in_threads(8, open_one)) == [202] * 3 + [429] * 5
    assert BlobUpload.objects.filter(tenant=tenant, state=BlobUpload.State.ACTIVE).count() == 3


@pytest.mark.django_db
def test_open_session_cap_is_a_clear_429_and_finished_sessions_do_not_count(reg, settings, make_reg):
    settings.GATEWAY_UPLOAD_MAX_SESSIONS = 2
    first, second = start(reg), start(reg)
    r = reg.post("/v2/acme/app/blobs/uploads/")
    assert r.status_code == 429
    error = r.json()["errors"][0]
    assert error["code"] == "TOOMANYREQUESTS" and "open upload sessions" in error["message"]
    assert error["detail"] == {"limit": "upload_sessions", "open_sessions": 2, "max_sessions": 2}
    # A monolithic push opens a session too, so it is refused the same way, and stores nothing.
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(b'x')}", b"x")
    assert r.status_code == 429 and not Blob.objects.exists()
    # Finishing one and cancelling the other frees both places.
    assert reg.put(f"{first}?digest={sha(b'one')}", b"one").status_code == 201
    assert reg.delete(second).status_code == 204
    start(reg)
    start(reg)
    assert BlobUpload.objects.filter(state=BlobUpload.State.ACTIVE).count() == 2


@pytest.mark.django_db
def test_tail_byte_cap_is_a_clear_429_and_changes_nothing(reg, settings, blob_store, tenant):
    settings.GATEWAY_UPLOAD_MAX_TAIL_BYTES = 5 * MiB
    a, b = start(reg), start(reg)
    held = os.urandom(3 * MiB)
    assert reg.patch(a, held, HTTP_CONTENT_RANGE=f"0-{len(held) - 1}").status_code == 202
    before = uploads_objects(blob_store, tenant)
    # 3 MiB carried by session a plus up to 3 MiB more from b is over 5 MiB: refused before reading it.
    r = reg.patch(b, os.urandom(3 * MiB), HTTP_CONTENT_RANGE=f"0-{3 * MiB - 1}")
    assert r.status_code == 429
    error = r.json()["errors"][0]
    assert error["code"] == "TOOMANYREQUESTS" and "tails" in error["message"]
    assert error["detail"] == {"limit": "upload_tail_bytes", "tail_bytes": 3 * MiB, "max_tail_bytes": 5 * MiB}
    assert r["Range"] == "0-0"
    upload_b = BlobUpload.objects.get(storage_key__endswith=b.rsplit("/", 1)[1].replace("-", ""))
    assert upload_b.offset == 0 and upload_b.tail_size == 0 and uploads_objects(blob_store, tenant) == before
    # A small chunk still fits, and once a finishes its tail no longer counts.
    assert reg.patch(b, b"small", HTTP_CONTENT_RANGE="0-4").status_code == 202
    assert reg.put(f"{a}?digest={sha(held)}").status_code == 201
    big = os.urandom(3 * MiB)
    assert reg.patch(b, big, HTTP_CONTENT_RANGE=f"5-{5 + len(big) - 1}").status_code == 202
    assert reg.put(f"{b}?digest={sha(b'small' + big)}").status_code == 201


@pytest.mark.django_db
def test_a_large_tail_lives_in_an_object_and_resumes_byte_identical(reg, tenant, blob_store, settings):
    settings.GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES = 64 * 1024
    loc = start(reg)
    chunks = [os.urandom(n) for n in (1 * MiB, 40_000, 2 * MiB + 3)]
    offset = 0
    seen_keys = []
    for chunk in chunks:
        r = reg.patch(loc, chunk, HTTP_CONTENT_RANGE=f"{offset}-{offset + len(chunk) - 1}")
        assert r.status_code == 202, r.content
        offset += len(chunk)
        upload = BlobUpload.objects.get()
        # Nothing of the tail in PostgreSQL: it is one object under the session's prefix, the previous one gone.
        assert bytes(upload.tail) == b"" and upload.tail_size == offset and upload.tail_spilled
        assert upload.tail_key == keys.upload_tail_key(tenant.pk, upload.pk, offset)
        assert upload.tail_key.startswith(upload.storage_key)
        assert blob_store.stat(upload.tail_key).size == offset
        assert uploads_objects(blob_store, tenant) == {upload.tail_key}
        seen_keys.append(upload.tail_key)
    assert len(set(seen_keys)) == 3
    data = b"".join(chunks)
    assert reg.put(f"{loc}?digest={sha(data)}").status_code == 201
    blob = Blob.objects.get()
    assert uploads_objects(blob_store, tenant) == {blob.storage_key}  # the tail object went with the finish
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(data)}").streaming_content) == data


@pytest.mark.django_db
def test_a_tail_object_with_multipart_parts_and_a_final_chunk(reg, tenant, blob_store, small_parts):
    loc = start(reg)
    first, second, last = os.urandom(6 * MiB), os.urandom(2 * MiB), os.urandom(700_000)
    assert reg.patch(loc, first, HTTP_CONTENT_RANGE=f"0-{len(first) - 1}").status_code == 202
    upload = BlobUpload.objects.get()
    assert upload.parts and upload.tail_key and upload.tail_size == 1 * MiB and bytes(upload.tail) == b""
    start2 = len(first)
    assert reg.patch(loc, second, HTTP_CONTENT_RANGE=f"{start2}-{start2 + len(second) - 1}").status_code == 202
    upload.refresh_from_db()
    assert len(upload.parts) == 1 and upload.tail_size == 3 * MiB
    data = first + second + last
    assert reg.put(f"{loc}?digest={sha(data)}", last).status_code == 201
    assert uploads_objects(blob_store, tenant) == {Blob.objects.get().storage_key}
    # (A large proxied download closes the test's database connection: last.)
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(data)}").streaming_content) == data


@pytest.mark.django_db
def test_a_small_tail_stays_in_the_row(reg, blob_store, tenant):
    loc = start(reg)
    assert reg.patch(loc, b"small tail", HTTP_CONTENT_RANGE="0-9").status_code == 202
    upload = BlobUpload.objects.get()
    assert bytes(upload.tail) == b"small tail" and upload.tail_key == "" and upload.tail_size == 10
    assert not upload.tail_spilled and uploads_objects(blob_store, tenant) == set()


@pytest.mark.django_db
def test_cancel_deletes_the_tail_object(reg, blob_store, tenant):
    loc = start(reg)
    assert reg.patch(loc, os.urandom(1 * MiB)).status_code == 202
    tail_key = BlobUpload.objects.get().tail_key
    assert tail_key and blob_store.stat(tail_key) is not None
    assert reg.delete(loc).status_code == 204
    assert blob_store.stat(tail_key) is None and uploads_objects(blob_store, tenant) == set()
