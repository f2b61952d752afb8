"""Garbage in: a clear OCI error out, never a 500, nothing written."""

import pytest

from gateway.registry.models import Blob, BlobUpload, Manifest, Repository

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v2/acme/UPPER/manifests/v1"),
        ("GET", "/v2/acme/a..b/manifests/v1"),
        ("GET", "/v2/acme/-x/tags/list"),
        ("POST", "/v2/acme/bad__-name/blobs/uploads/"),
        ("GET", "/v2/acme/app/blobs/sha256:123"),
        ("GET", "/v2/acme/app/blobs/md5:" + "a" * 32),
        ("GET", "/v2/acme/app/blobs/notadigest"),
        ("HEAD", "/v2/acme/app/manifests/sha256:" + "Z" * 64),
        ("GET", "/v2/acme/app/blobs/uploads/not-a-uuid"),
        ("PATCH", "/v2/acme/app/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        ("PUT", "/v2/acme/app/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=sha256:" + "a" * 64),
        ("PUT", "/v2/acme/app/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/v2/acme/app/blobs/uploads/zzz"),
        ("POST", "/v2/acme/app/manifests/v1"),
        ("PATCH", "/v2/acme/app/manifests/v1"),
        ("GET", "/v2/acme/app/tags/list?n=-1"),
        ("GET", "/v2/acme/app/referrers/sha256:short"),
        ("GET", "/v2/acme"),
        ("GET", "/v2/acme/"),
    ],
)
def test_bad_requests_get_spec_errors(reg, method, path):
    reg.push_blob("app", b"x")
    before = (Repository.objects.count(), Blob.objects.count(), Manifest.objects.count(), BlobUpload.objects.count())
    r = reg.client.generic(method, path, b"", **reg.h())
    assert 400 <= r.status_code < 500, (r.status_code, r.content)
    if method != "HEAD" and r.status_code != 404 or r.content:
        body = r.json() if r.content else {"errors": [{"code": "?"}]}
        assert body["errors"][0]["code"] and body["errors"][0]["message"]
    after = (Repository.objects.count(), Blob.objects.count(), Manifest.objects.count(), BlobUpload.objects.count())
    assert before == after


def test_malformed_content_length_is_size_invalid(reg):
    # A body shorter than its Content-Length needs a real socket: tests/e2e/test_live_server.py.
    loc = reg.post("/v2/acme/app/blobs/uploads/")["Location"]
    r = reg.client.generic("PATCH", loc, b"12345", CONTENT_LENGTH="x", **reg.h())
    assert r.status_code == 400
    assert BlobUpload.objects.get().offset == 0
