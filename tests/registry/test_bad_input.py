"""Garbage in: a clear OCI error out, never a 500, nothing written."""

import hashlib
import json

import pytest

from gateway.registry.models import Blob, BlobUpload, Manifest, ObjectDeletion, Repository, Tag
from gateway.storage import keys

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


# -- manifests that would not survive PostgreSQL or mean two things (items 16 and 18) ---------------------------

OCI = "application/vnd.oci.image.manifest.v1+json"


def _image_doc(reg, **extra) -> dict:
    config = b'{"architecture":"amd64","os":"linux"}'
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": reg.push_blob("app", config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": reg.push_blob("app", b"layer"), "size": 5}
        ],
    }
    doc.update(extra)
    return doc


def _bad_manifests(doc: dict) -> dict[str, bytes]:
    good = json.dumps(doc).encode()
    config = json.dumps(doc["config"]).encode()
    layer = doc["layers"][0]
    return {
        "nul in an annotation value": json.dumps({**doc, "annotations": {"a": "x\u0000y"}}).encode(),
        "nul in an annotation key": json.dumps({**doc, "annotations": {"a\u0000": "y"}}).encode(),
        "nul in a layer annotation": json.dumps({**doc, "layers": [{**layer, "annotations": {"k": "\u0000"}}]}).encode(),
        "nul in artifactType": json.dumps({**doc, "artifactType": "application/x\u0000"}).encode(),
        "lone surrogate": json.dumps({**doc, "annotations": {"a": "\ud800"}}).encode(),
        "lone low surrogate in a key": json.dumps({**doc, "annotations": {"\udc00": "b"}}).encode(),
        "nested 1000 deep": good[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        "nested 100000 deep": good[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "objects nested 70 deep": good[:-1] + b', "x": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}",
        "artifactType of 256 characters": json.dumps({**doc, "artifactType": "application/" + "x" * 244}).encode(),
        "config mediaType of 256 characters": json.dumps(
            {**doc, "config": {**doc["config"], "mediaType": "a/" + "b" * 254}}
        ).encode(),
        "size beyond 64 bits": json.dumps({**doc, "layers": [{**layer, "size": 2**64}]}).encode(),
        "integer of 5000 digits": good[:-1] + b', "x": ' + b"9" * 5000 + b"}",
        "urls not a list": json.dumps({**doc, "layers": [{**layer, "urls": "http://x"}]}).encode(),
        "duplicate top-level key": b'{"schemaVersion": 2, "schemaVersion": 2, ' + good[1:],
        "duplicate key in a descriptor": good.replace(b'"config": {', b'"config": {"digest": "sha256:' + b"0" * 64 + b'", ', 1),
        "duplicate annotation": good[:-1] + b', "annotations": {"a": "1", "a": "2"}}',
        "utf-8 byte-order mark": b"\xef\xbb\xbf" + good,
        "utf-16 with a bom": json.dumps(doc).encode("utf-16"),
        "utf-16-le without a bom": json.dumps(doc).encode("utf-16-le"),
        "utf-16-be without a bom": json.dumps(doc).encode("utf-16-be"),
        "utf-32": json.dumps(doc).encode("utf-32"),
        "invalid utf-8": good[:-1] + b', "x": "\xff\xfe"}',
        "raw control character": good[:-1] + b', "x": "a\x00b"}',
        "NaN": good.replace(b'"size": 5', b'"size": NaN'),
        "config without digest": good.replace(config, b'{"mediaType": "x/y", "size": 1}'),
    }


def _state(tenant, store):
    rows = (Repository.objects.count(), Manifest.objects.count(), Tag.objects.count(), ObjectDeletion.objects.count())
    return rows, sorted(o.key for o in store.list(keys.repos_prefix(tenant.pk)))


def test_manifests_that_postgresql_cannot_hold_or_that_mean_two_things_are_manifest_invalid(reg, tenant, blob_store):
    doc = _image_doc(reg)
    assert reg.push_manifest("app", "good", doc).status_code == 201
    reg.client.raise_request_exception = False  # a 500 must show up as a status, not as an exception here
    for name, payload in _bad_manifests(doc).items():
        before = _state(tenant, blob_store)
        for ref in ("v1", "good", "sha256:" + hashlib.sha256(payload).hexdigest()):
            r = reg.put(f"/v2/acme/app/manifests/{ref}", payload, content_type=OCI)
            assert r.status_code == 400, (name, ref, r.status_code, r.content[:300])
            assert r.json()["errors"][0]["code"] == "MANIFEST_INVALID", (name, r.content[:300])
        assert _state(tenant, blob_store) == before, name
    # The tag that was there is untouched, in the database and in the bucket.
    assert reg.get("/v2/acme/app/manifests/good").content == json.dumps(doc).encode()
    tag_doc = json.loads(b"".join(blob_store.open_read(keys.tag_key(tenant.pk, "app", "good"))))
    assert tag_doc["digest"] == "sha256:" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def test_the_largest_storable_values_are_accepted(reg, tenant):
    doc = _image_doc(reg, artifactType="application/" + "x" * 243, annotations={"k": "\u00e9\u4e2d\U0001f600"})
    doc["config"]["mediaType"] = "a/" + "b" * 253
    r = reg.push_manifest("app", "v1", doc)
    assert r.status_code == 201, r.content
    m = Manifest.objects.get(tenant=tenant, repository__name="app")
    assert len(m.artifact_type) == 255 and m.annotations == {"k": "\u00e9\u4e2d\U0001f600"}
    nested = json.dumps(doc).encode()[:-1] + b', "x": ' + b"[" * 60 + b"]" * 60 + b"}"
    assert reg.push_manifest("app", "v2", nested).status_code == 201
