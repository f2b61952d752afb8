"""Blob uploads (monolithic, chunked, streamed), downloads, ranges, deletes and mounts."""

import hashlib
import json
import os
import threading

import pytest
import requests
from django.test import Client

from gateway.registry.models import Blob, BlobUpload, RepositoryBlob
from gateway.storage import reset_blob_stores
from tests.helpers import Reg, sha

MiB = 1024 * 1024


def start(reg, repo="app"):
    r = reg.post(f"/v2/acme/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.content
    assert r["Location"].startswith(f"/v2/acme/{repo}/blobs/uploads/")
    assert r["Docker-Upload-UUID"] in r["Location"]
    assert r["Range"] == "0-0"
    assert int(r["OCI-Chunk-Min-Length"]) == 5 * MiB
    return r["Location"]


def patch_chunks(reg, loc: str, chunks: list[bytes]) -> None:
    """PATCH each chunk with its Content-Range; every answer (and the status after it) has the Range so far."""
    offset = 0
    for chunk in chunks:
        r = reg.patch(loc, chunk, HTTP_CONTENT_RANGE=f"{offset}-{offset + len(chunk) - 1}")
        assert r.status_code == 202, r.content
        offset += len(chunk)
        assert r["Range"] == f"0-{offset - 1}"
        status = reg.get(loc)
        assert status.status_code == 204 and status["Range"] == f"0-{offset - 1}"


@pytest.mark.django_db
def test_monolithic_upload_then_head_and_get(reg):
    data = os.urandom(300_000)
    digest = sha(data)
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={digest}", data)
    assert r.status_code == 201
    assert r["Location"] == f"/v2/acme/app/blobs/{digest}"
    assert r["Docker-Content-Digest"] == digest
    h = reg.head(f"/v2/acme/app/blobs/{digest}")
    assert h.status_code == 200 and h["Content-Length"] == str(len(data)) and h["Docker-Content-Digest"] == digest
    g = reg.get(f"/v2/acme/app/blobs/{digest}")
    assert g.status_code == 200 and b"".join(g.streaming_content) == data


@pytest.mark.django_db
def test_range_requests(reg):
    data = bytes(range(256)) * 100
    digest = reg.push_blob("app", data)
    r = reg.get(f"/v2/acme/app/blobs/{digest}", HTTP_RANGE="bytes=10-19")
    assert r.status_code == 206 and b"".join(r.streaming_content) == data[10:20]
    assert r["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = reg.get(f"/v2/acme/app/blobs/{digest}", HTTP_RANGE="bytes=-5")
    assert b"".join(r.streaming_content) == data[-5:]
    r = reg.get(f"/v2/acme/app/blobs/{digest}", HTTP_RANGE="bytes=25600-")
    assert r.status_code == 416 and r["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.django_db
def test_chunked_upload_with_uneven_chunks_across_requests(reg, small_parts, blob_store):
    chunks = [os.urandom(n) for n in (3 * MiB, 4 * MiB, 7 * MiB, 1024, 6 * MiB + 17, 1)]
    data = b"".join(chunks)
    loc = start(reg)
    patch_chunks(reg, loc, chunks)
    upload = BlobUpload.objects.get()
    assert upload.parts and all(p[2] >= 5 * MiB for p in upload.parts)  # S3 minimum part size kept
    assert len(bytes(upload.tail)) < 5 * MiB
    digest = sha(data)
    r = reg.put(f"{loc}?digest={digest}")
    assert r.status_code == 201, r.content
    blob = Blob.objects.get(digest=digest)
    assert blob.size == len(data)
    assert blob_store.stat(blob.storage_key).size == len(data)
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{digest}").streaming_content) == data


@pytest.mark.django_db
def test_put_with_final_chunk_and_streamed_patch_without_content_range(reg):
    loc = start(reg)
    first, last = os.urandom(1000), os.urandom(500)
    assert reg.patch(loc, first).status_code == 202
    r = reg.put(f"{loc}?digest={sha(first + last)}", last)
    assert r.status_code == 201
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(first + last)}").streaming_content) == first + last


@pytest.mark.django_db
def test_out_of_order_chunk_is_416_and_changes_nothing(reg):
    loc = start(reg)
    assert reg.patch(loc, b"a" * 10, HTTP_CONTENT_RANGE="0-9").status_code == 202
    r = reg.patch(loc, b"b" * 10, HTTP_CONTENT_RANGE="20-29")
    assert r.status_code == 416 and r["Range"] == "0-9"
    r = reg.patch(loc, b"b" * 10, HTTP_CONTENT_RANGE="10-25")  # range longer than the body
    assert r.status_code == 416
    assert BlobUpload.objects.get().offset == 10


@pytest.mark.django_db
def test_wrong_digest_aborts_and_links_nothing(reg, small_parts, blob_store):
    loc = start(reg)
    data = os.urandom(6 * MiB)
    assert reg.patch(loc, data).status_code == 202
    upload = BlobUpload.objects.get()
    assert upload.multipart_id
    r = reg.put(f"{loc}?digest={sha(b'something else')}")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not Blob.objects.exists() and not RepositoryBlob.objects.exists()
    assert BlobUpload.objects.get().state == "cancelled"
    pending = [u for u in blob_store.list_multipart("t/") if u.upload_id == upload.multipart_id]
    assert pending == []
    assert blob_store.stat(upload.storage_key) is None
    assert reg.get(loc).status_code == 404


@pytest.mark.django_db
def test_monolithic_wrong_digest_and_short_body(reg, blob_store):
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(b'other')}", b"data")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = reg.post("/v2/acme/app/blobs/uploads/?digest=sha256:nothex", b"data")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not Blob.objects.exists()


@pytest.mark.django_db
def test_cancel_aborts_the_multipart_upload(reg, small_parts, blob_store):
    loc = start(reg)
    assert reg.patch(loc, os.urandom(5 * MiB)).status_code == 202
    upload = BlobUpload.objects.get()
    assert reg.delete(loc).status_code == 204
    assert reg.get(loc).status_code == 404
    assert reg.patch(loc, b"x").json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert [u for u in blob_store.list_multipart("t/") if u.upload_id == upload.multipart_id] == []


@pytest.mark.django_db
def test_existing_blob_is_linked_not_stored_twice(reg, blob_store):
    data = os.urandom(2000)
    digest = reg.push_blob("one", data)
    loc = start(reg, "two")
    assert reg.put(f"{loc}?digest={digest}", data).status_code == 201
    assert reg.push_blob("three", data) == digest
    assert Blob.objects.count() == 1
    assert RepositoryBlob.objects.count() == 3
    objects = [o for o in blob_store.list(f"t/{Blob.objects.get().tenant_id}/uploads/")]
    assert len(objects) == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_pushes_of_the_same_layer(tenant, owner_token):
    from tests.helpers import basic

    data = os.urandom(3 * MiB)
    digest = sha(data)
    results = []

    def push(repo):
        from django.db import connections

        try:
            c = Reg(Client(), basic("owner", owner_token))
            loc = c.post(f"/v2/acme/{repo}/blobs/uploads/")["Location"]
            c.patch(loc, data)
            results.append(c.put(f"{loc}?digest={digest}").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=push, args=(f"r{i}",)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [201, 201]
    assert Blob.objects.filter(digest=digest).count() == 1
    c = Reg(Client(), basic("owner", owner_token))
    for repo in ("r0", "r1"):
        assert hashlib.sha256(b"".join(c.get(f"/v2/acme/{repo}/blobs/{digest}").streaming_content)).hexdigest() == digest[7:]


@pytest.mark.django_db
def test_mount_within_the_tenant_and_fallback(reg, make_reg):
    data = b"shared layer"
    digest = reg.push_blob("base", data)
    r = reg.post(f"/v2/acme/app/blobs/uploads/?mount={digest}&from=acme/base")
    assert r.status_code == 201 and r["Location"] == f"/v2/acme/app/blobs/{digest}"
    assert reg.head(f"/v2/acme/app/blobs/{digest}").status_code == 200
    # Unknown source repository or blob: a normal upload session instead.
    r = reg.post(f"/v2/acme/app2/blobs/uploads/?mount={digest}&from=acme/nothere")
    assert r.status_code == 202
    r = reg.post(f"/v2/acme/app2/blobs/uploads/?mount={sha(b'nope')}&from=acme/base")
    assert r.status_code == 202


@pytest.mark.django_db
def test_blobs_of_another_tenant_are_invisible(reg, make_reg):
    from tests.factories import make_tenant

    data = b"acme secret layer"
    digest = reg.push_blob("app", data)
    other_tenant = make_tenant("globex")
    mallory = make_reg("owner", tenant_obj=other_tenant, username="mallory")
    mallory.prefix = "/v2/globex"
    mallory.push_blob("mine", b"hello")
    assert mallory.head(f"/v2/globex/mine/blobs/{digest}").status_code == 404
    assert mallory.head(f"/v2/acme/app/blobs/{digest}").status_code == 403
    # Mounting from the other tenant falls back to an upload session and links nothing.
    r = mallory.post(f"/v2/globex/mine/blobs/uploads/?mount={digest}&from=acme/app")
    assert r.status_code == 202
    assert mallory.head(f"/v2/globex/mine/blobs/{digest}").status_code == 404
    # Pushing the same bytes into globex stores them for globex, separately.
    mallory.push_blob("mine", data)
    assert Blob.objects.filter(digest=digest).count() == 2


@pytest.mark.django_db
def test_delete_blob_unlinks_it(reg):
    digest = reg.push_blob("app", b"to be deleted")
    assert reg.delete(f"/v2/acme/app/blobs/{digest}").status_code == 202
    r = reg.head(f"/v2/acme/app/blobs/{digest}")
    assert r.status_code == 404
    assert reg.delete(f"/v2/acme/app/blobs/{digest}").json()["errors"][0]["code"] == "BLOB_UNKNOWN"


@pytest.mark.django_db
def test_redirect_mode_gives_a_working_presigned_url(reg, tenant):
    data = os.urandom(5000)
    digest = reg.push_blob("app", data)
    tenant.redirect_blob_downloads = True
    tenant.save()
    from gateway.registry import access

    access.caches_clear()
    r = reg.get(f"/v2/acme/app/blobs/{digest}")
    assert r.status_code == 307
    assert r["Docker-Content-Digest"] == digest
    fetched = requests.get(r["Location"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == data
    assert "X-Amz-Signature=" in r["Location"]


@pytest.mark.django_db
def test_storage_outage_is_503_with_retry_after_and_writes_nothing(reg, settings):
    settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "endpoint_url": "http://127.0.0.1:1"}
    reset_blob_stores()
    try:
        r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha(b'abc')}", b"abc")
    finally:
        reset_blob_stores()
    assert r.status_code == 503
    assert r["Retry-After"]
    assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert not Blob.objects.exists()


# -- sha512 (decisions/0012) ---------------------------------------------------------------------


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


@pytest.mark.django_db
def test_sha512_monolithic_upload(reg):
    data = os.urandom(300_000)
    digest = sha512(data)
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={digest}", data)
    assert r.status_code == 201, r.content
    assert r["Docker-Content-Digest"] == digest and r["Location"] == f"/v2/acme/app/blobs/{digest}"
    assert Blob.objects.get().digest == digest
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{digest}").streaming_content) == data
    # The same bytes again are linked, not stored twice.
    assert reg.post(f"/v2/acme/app2/blobs/uploads/?digest={digest}", data).status_code == 201
    assert Blob.objects.count() == 1


@pytest.mark.django_db
def test_sha512_chunked_upload_resumes_across_patches(reg, small_parts, blob_store):
    chunks = [os.urandom(n) for n in (3 * MiB, 4 * MiB, 1024, 2 * MiB + 7)]
    data = b"".join(chunks)
    loc = start(reg)
    patch_chunks(reg, loc, chunks)
    assert BlobUpload.objects.get().parts  # the hash state crossed part boundaries and requests
    r = reg.put(f"{loc}?digest={sha512(data)}")
    assert r.status_code == 201, r.content
    assert r["Docker-Content-Digest"] == sha512(data)
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha512(data)}").streaming_content) == data


@pytest.mark.django_db
def test_a_session_without_a_hint_finishes_with_either_algorithm(reg):
    a, b = start(reg), start(reg)
    data = b"the same bytes, two digests"
    assert reg.patch(a, data).status_code == 202 and reg.patch(b, data).status_code == 202
    assert reg.put(f"{a}?digest={sha(data)}").status_code == 201
    assert reg.put(f"{b}?digest={sha512(data)}").status_code == 201
    assert set(Blob.objects.values_list("digest", flat=True)) == {sha(data), sha512(data)}


@pytest.mark.django_db
def test_sha512_mismatch_is_digest_invalid_and_stores_nothing(reg, small_parts, blob_store):
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha512(b'other')}", b"data")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    loc = start(reg)
    data = os.urandom(6 * MiB)
    assert reg.patch(loc, data).status_code == 202
    upload = BlobUpload.objects.get(state="active")
    r = reg.put(f"{loc}?digest={sha512(data + b'x')}")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert r.json()["errors"][0]["detail"]["actual"] == sha512(data)
    assert not Blob.objects.exists() and blob_store.stat(upload.storage_key) is None
    assert [u for u in blob_store.list_multipart("t/") if u.upload_id == upload.multipart_id] == []
    # Upper-case or short hex is not a sha512 digest.
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha512(b'x').upper().replace('SHA512', 'sha512')}", b"x")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest=sha512:{'a' * 64}", b"x")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


@pytest.mark.django_db
def test_digest_algorithm_hint_hashes_only_that_algorithm(reg, blob_store):
    data = b"hinted"
    r = reg.post("/v2/acme/app/blobs/uploads/?digest-algorithm=sha512")
    assert r.status_code == 202
    only512 = r["Location"]
    assert json.loads(bytes(BlobUpload.objects.get().hash_state)).keys() == {"sha512"}
    assert reg.patch(only512, data).status_code == 202
    # A sha256 digest cannot be checked by a session that hashed sha512 only: a clear DIGEST_INVALID, session gone.
    r = reg.put(f"{only512}?digest={sha(data)}")
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["code"] == "DIGEST_INVALID" and "sha512 only" in error["message"]
    assert reg.get(only512).status_code == 404 and not Blob.objects.exists()
    loc = reg.post("/v2/acme/app/blobs/uploads/?digest-algorithm=sha512")["Location"]
    assert reg.put(f"{loc}?digest={sha512(data)}", data).status_code == 201
    r = reg.post("/v2/acme/app/blobs/uploads/?digest-algorithm=md5")
    assert (
        r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID" and "md5" in r.json()["errors"][0]["message"]
    )


@pytest.mark.django_db
def test_a_session_started_before_the_multi_algorithm_hasher_keeps_working(reg):
    """An in-flight session's hash_state from before 0012 is PySha256's raw state (104 bytes)."""
    import rehashes

    loc = start(reg)
    first, rest = b"written by the old code ", b"finished by the new code"
    assert reg.patch(loc, first).status_code == 202
    legacy = rehashes.PySha256()
    legacy.update(first)
    assert len(bytes(legacy.serialize())) == 104
    BlobUpload.objects.update(hash_state=bytes(legacy.serialize()))
    assert reg.patch(loc, rest, HTTP_CONTENT_RANGE=f"{len(first)}-{len(first) + len(rest) - 1}").status_code == 202
    assert reg.put(f"{loc}?digest={sha(first + rest)}").status_code == 201
    assert b"".join(reg.get(f"/v2/acme/app/blobs/{sha(first + rest)}").streaming_content) == first + rest


# -- the request lease (decisions/0012) ----------------------------------------------------------


class HeldBody:
    """A request body that sends `head`, then waits for `release` before sending `rest` (a client mid-PATCH)."""

    def __init__(self, head: bytes, rest: bytes) -> None:
        self.parts = [head, rest]
        self.reading = threading.Event()
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        if not self.parts:
            return b""
        if len(self.parts) == 1:
            self.reading.set()
            assert self.release.wait(60)
        chunk = self.parts[0][:size]
        self.parts[0] = self.parts[0][len(chunk) :]
        if not self.parts[0]:
            self.parts.pop(0)
        return chunk


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_patches_on_one_session_get_one_416(tenant, owner_token):
    from django.db import connections

    from gateway.registry import selectors
    from gateway.registry.services import uploads as svc
    from tests.helpers import basic

    c = Reg(Client(), basic("owner", owner_token))
    loc = start(c)
    upload_id = BlobUpload.objects.get().pk
    head, rest = os.urandom(100_000), os.urandom(100_000)
    body = HeldBody(head, rest)
    outcome: list = []

    def slow_patch() -> None:
        try:
            repo = selectors.repository_get(tenant=tenant, name="app")
            outcome.append(
                svc.blob_upload_append(tenant=tenant, repository=repo, upload_id=upload_id, body=svc.Body(body, None)).offset
            )
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)
        finally:
            connections.close_all()

    t = threading.Thread(target=slow_patch)
    t.start()
    try:
        assert body.reading.wait(60)
        # The first request holds the lease while it streams: a second one is refused, and changes nothing.
        r = c.patch(loc, b"intruder", HTTP_CONTENT_RANGE="0-7")
        assert r.status_code == 416 and r["Range"] == "0-0"
        assert "another request" in r.json()["errors"][0]["message"]
        assert c.put(f"{loc}?digest={sha(b'intruder')}", b"intruder").status_code == 416
        assert c.delete(loc).status_code == 416
        assert c.get(loc).status_code == 204  # status still answers
    finally:
        body.release.set()
        t.join()
    assert outcome == [len(head) + len(rest)]
    # Once it is done, the session is free again.
    assert c.put(f"{loc}?digest={sha(head + rest)}").status_code == 201
