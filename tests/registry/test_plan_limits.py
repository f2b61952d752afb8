"""Plan limits at push (docs/decisions/0039): the storage quota at upload start, as bytes arrive and at manifest PUT, and
the private-repository limit when a push creates a repository; real PostgreSQL and SeaweedFS."""

from __future__ import annotations

import io
import json
import os

import pytest

from accounts.limits import TenantLimits
from accounts.services import tenant_limits_set
from gateway.registry.errors import Denied
from gateway.registry.models import Blob, BlobUpload, Manifest, Repository, Tag
from gateway.registry.services import uploads as svc
from gateway.registry.services.repositories import repository_ensure, repository_visibility_set
from gateway.storage import keys
from tests.helpers import sha
from tests.registry.test_blobs import start
from tests.registry.test_upload_limits import pending_multipart, uploads_objects

MiB = 1024 * 1024
BILLING = "http://testserver/orgs/acme/billing/"
CONFIG = b'{"architecture":"amd64","os":"linux"}'


def limits(tenant, **values) -> None:
    tenant_limits_set(tenant=tenant, limits=TenantLimits(**values))


def image(layer: bytes) -> bytes:
    """The manifest bytes push_image sends for CONFIG and this one layer."""
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}],
    }
    return json.dumps(doc).encode()


def denied(response) -> dict:
    assert response.status_code == 403, response.content
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED"
    return error


def assert_storage_refusal(error: dict, *, quota: int, used: int) -> None:
    message = error["message"]
    assert message.startswith("storage quota exceeded") and f"{quota}-byte storage quota" in message
    assert f"stores {used} of" in message and BILLING in message
    assert error["detail"]["quota"] == "storage" and error["detail"]["limit_bytes"] == quota
    assert error["detail"]["used_bytes"] == used and error["detail"]["billing_url"] == BILLING


@pytest.fixture
def billing_url(settings):
    settings.EXTERNAL_URL = "http://testserver"


# -- storage quota -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_push_exactly_at_the_quota_passes_and_the_next_upload_fails_at_its_start(reg, tenant, billing_url):
    layer = os.urandom(3000)
    quota = len(CONFIG) + len(layer) + len(image(layer))
    limits(tenant, storage_quota_bytes=quota)
    reg.push_image("app", "v1", [layer])
    sessions = BlobUpload.objects.count()
    error = denied(reg.post("/v2/acme/app/blobs/uploads/"))
    assert_storage_refusal(error, quota=quota, used=quota)
    assert "no room for a new upload" in error["message"]
    assert BlobUpload.objects.count() == sessions  # no session opened
    # What the tenant already stores costs nothing new: the same layer into another repository, by digest or mount.
    assert reg.post(f"/v2/acme/other/blobs/uploads/?digest={sha(layer)}", layer).status_code == 201
    assert reg.post(f"/v2/acme/third/blobs/uploads/?mount={sha(CONFIG)}&from=acme/app").status_code == 201
    # And the same manifest pushed again to its repository is no new byte either.
    r = reg.push_manifest("app", "again", image(layer), "application/vnd.oci.image.manifest.v1+json")
    assert r.status_code == 201


@pytest.mark.django_db
def test_one_byte_over_at_the_manifest_is_refused_and_leaves_no_manifest(reg, tenant, blob_store, billing_url):
    layer = os.urandom(3000)
    payload = image(layer)
    quota = len(CONFIG) + len(layer) + len(payload) - 1
    limits(tenant, storage_quota_bytes=quota)
    reg.push_blob("app", CONFIG)
    reg.push_blob("app", layer)
    error = denied(reg.push_manifest("app", "v1", payload, "application/vnd.oci.image.manifest.v1+json"))
    assert_storage_refusal(error, quota=quota, used=len(CONFIG) + len(layer))
    assert f"this manifest needs {len(payload)} bytes" in error["message"]
    assert not Manifest.objects.exists() and not Tag.objects.exists()
    assert blob_store.stat(keys.manifest_key(tenant.pk, "app", sha(payload))) is None
    assert blob_store.stat(keys.tag_key(tenant.pk, "app", "v1")) is None


@pytest.mark.django_db
def test_one_byte_over_in_a_chunk_of_known_length_is_refused_before_it_is_read(reg, tenant, blob_store, billing_url):
    data = os.urandom(100_000)
    limits(tenant, storage_quota_bytes=len(data) - 1)
    loc = start(reg)
    error = denied(reg.patch(loc, data, HTTP_CONTENT_RANGE=f"0-{len(data) - 1}"))
    assert_storage_refusal(error, quota=len(data) - 1, used=0)
    assert error["detail"]["needed_bytes"] == len(data)
    assert BlobUpload.objects.get().state == BlobUpload.State.CANCELLED
    assert (
        not Blob.objects.exists() and uploads_objects(blob_store, tenant) == set() and pending_multipart(blob_store, tenant) == []
    )
    # Exactly at the quota, the same bytes pass: chunk by chunk and then by PUT.
    limits(tenant, storage_quota_bytes=len(data))
    loc = start(reg)
    assert reg.patch(loc, data[:60_000], HTTP_CONTENT_RANGE="0-59999").status_code == 202
    assert reg.put(f"{loc}?digest={sha(data)}", data[60_000:]).status_code == 201
    assert Blob.objects.get().size == len(data)


@pytest.mark.django_db
def test_the_last_chunk_of_a_put_is_checked_too(reg, tenant, blob_store, billing_url):
    data = os.urandom(50_000)
    limits(tenant, storage_quota_bytes=len(data) - 1)
    loc = start(reg)
    assert reg.patch(loc, data[:10_000], HTTP_CONTENT_RANGE="0-9999").status_code == 202
    error = denied(reg.put(f"{loc}?digest={sha(data)}", data[10_000:]))
    assert error["detail"]["needed_bytes"] == len(data)
    assert BlobUpload.objects.get().state == BlobUpload.State.CANCELLED and not Blob.objects.exists()
    assert uploads_objects(blob_store, tenant) == set()


class Counting:
    """A body of unknown length (a chunked PATCH) that counts what was read and may act once a count is reached."""

    def __init__(self, data: bytes, *, at: int | None = None, then=None) -> None:
        self._stream, self.read_bytes, self._at, self._then = io.BytesIO(data), 0, at, then

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._stream.read(size)
        self.read_bytes += len(chunk)
        if self._at is not None and self.read_bytes >= self._at:
            self._at, then = None, self._then
            then()
        return chunk


@pytest.mark.django_db
def test_a_stream_without_a_length_is_refused_at_the_read_that_crosses_the_quota(
    reg, tenant, blob_store, small_parts, billing_url
):
    quota = 7 * MiB
    limits(tenant, storage_quota_bytes=quota)
    repository = repository_ensure(tenant=tenant, name="app")
    upload = svc.blob_upload_start(tenant=tenant, repository=repository)
    body = Counting(os.urandom(12 * MiB))
    with pytest.raises(Denied, match="storage quota exceeded"):
        svc.blob_upload_append(tenant=tenant, repository=repository, upload_id=upload.pk, body=svc.Body(body, None))
    # Refused at the first read past the quota (reads are at most 1 MiB), after one 5 MiB part went to S3.
    assert quota < body.read_bytes <= quota + MiB
    assert BlobUpload.objects.get().state == BlobUpload.State.CANCELLED
    assert pending_multipart(blob_store, tenant) == [] and uploads_objects(blob_store, tenant) == set()


@pytest.mark.django_db
def test_a_concurrent_commit_stops_a_running_stream_within_one_part(reg, tenant, blob_store, small_parts, billing_url):
    """Push B commits 14 MiB while push A streams: A sees it at its next part boundary and stops there, so the bytes the
    tenant holds in S3 never exceed the quota by more than one part; the committed ones never exceed it at all."""
    quota, part = 20 * MiB, 5 * MiB
    limits(tenant, storage_quota_bytes=quota)
    other = os.urandom(14 * MiB)
    repository = repository_ensure(tenant=tenant, name="app")
    upload = svc.blob_upload_start(tenant=tenant, repository=repository)
    body = Counting(os.urandom(18 * MiB), at=6 * MiB, then=lambda: reg.push_blob("other", other))
    with pytest.raises(Denied, match="storage quota exceeded"):
        svc.blob_upload_append(tenant=tenant, repository=repository, upload_id=upload.pk, body=svc.Body(body, None))
    room_after_b = quota - len(other)
    assert body.read_bytes <= room_after_b + part  # without the re-check A would have read all 18 MiB
    assert body.read_bytes < 18 * MiB
    stored = Blob.objects.get()
    assert stored.size == len(other) and uploads_objects(blob_store, tenant) == {stored.storage_key}
    assert pending_multipart(blob_store, tenant) == []


# -- private repositories ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_push_creating_a_private_repository_past_the_limit_is_denied(reg, tenant, billing_url):
    limits(tenant, private_repositories_limit=2)
    reg.push_blob("one", b"a")  # 0 → 1
    reg.push_blob("two", b"b")  # N-1 → N passes
    error = denied(reg.post("/v2/acme/three/blobs/uploads/"))
    message = error["message"]
    assert "private repositories limit reached" in message and "allows 2 private repositories, it has 2" in message
    assert BILLING in message and error["detail"] == {
        "limit": "private_repositories",
        "max": 2,
        "count": 2,
        "billing_url": BILLING,
    }
    # A manifest PUT that would create it is refused the same way; nothing was created.
    denied(reg.push_manifest("three", "v1", image(b"a"), "application/vnd.oci.image.manifest.v1+json"))
    assert not Repository.objects.filter(name="three").exists()
    # Existing private repositories still take pushes; a public one does not count.
    reg.push_blob("two", b"c")
    repository_visibility_set(tenant=tenant, name="one", visibility="public")
    reg.push_blob("three", b"d")
    # Making the public one private again would be a third: refused, it stays public.
    with pytest.raises(Exception, match="private repositories limit reached") as refused:
        repository_visibility_set(tenant=tenant, name="one", visibility="private")
    assert refused.value.status == 403  # type: ignore[attr-defined]
    assert Repository.objects.get(name="one").visibility == "public"
    # Raising the limit (a plan change) makes room at once.
    limits(tenant, private_repositories_limit=3)
    assert repository_visibility_set(tenant=tenant, name="one", visibility="private").visibility == "private"
