"""sha512 end to end: digests, keys, manifests pushed and pulled by sha512, sha512 descriptors, GC, audit, rebuild, replication.

Most tests make their blobs the way a committed sha512 upload leaves them (data object, index
object, Blob and RepositoryBlob rows: `_sha512_blob`); the last ones push them through /v2/.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from gateway.registry.digests import digest_of, parse_digest
from gateway.registry.errors import DigestInvalid
from gateway.registry.models import Blob, Manifest, ObjectDeletion, Repository, RepositoryBlob, Tag
from gateway.registry.services.gc import gc_run_to_completion
from gateway.registry.services.rebuild import registry_rebuild
from gateway.replication.integrity import integrity_audit
from gateway.replication.models import ObjectAudit, ObjectReplica
from gateway.replication.services import replica_verify
from gateway.replication.transfer import ContentMismatch, copy_verified, rehash
from gateway.storage import keys
from tests.helpers import replicate_all
from tests.registry.test_rebuild import _wipe

pytestmark = pytest.mark.django_db

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def _sha512_blob(tenant, repo: str, data: bytes, blob_store) -> str:
    """A blob as a finished sha512 upload leaves it: bytes at an upload key, its index object, the Blob row linked into `repo`."""
    digest = sha512(data)
    repository, _ = Repository.objects.get_or_create(tenant=tenant, name=repo)
    blob = Blob.objects.filter(tenant=tenant, digest=digest).first()
    if blob is None:
        key = keys.upload_key(tenant.pk, uuid.uuid4())
        blob_store.put(key, data)
        blob_store.put_json(keys.blob_index_key(tenant.pk, digest), {"digest": digest, "size": len(data), "key": key})
        blob = Blob.objects.create(tenant=tenant, digest=digest, size=len(data), storage_key=key)
    RepositoryBlob.objects.get_or_create(tenant=tenant, repository=repository, blob=blob)
    return digest


def _image(tenant, blob_store, repo: str = "app", layer: bytes = b"sha512 layer", **extra) -> bytes:
    config = b'{"architecture":"amd64","os":"linux"}'
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _sha512_blob(tenant, repo, config, blob_store),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _sha512_blob(tenant, repo, layer, blob_store),
                "size": len(layer),
            }
        ],
        **extra,
    }
    return json.dumps(doc).encode()


# -- digests and keys ---------------------------------------------------------------------------------


def test_parse_digest_accepts_sha512_and_only_well_formed_digests():
    good = "sha512:" + "a" * 128
    assert parse_digest(good) == good and parse_digest("sha256:" + "0" * 64)
    for bad in (
        "sha512:" + "a" * 64,
        "sha512:" + "a" * 129,
        "sha512:" + "A" * 128,
        "sha384:" + "a" * 96,
        "sha512:",
        "SHA512:" + "a" * 128,
    ):
        with pytest.raises(DigestInvalid):
            parse_digest(bad)
    assert digest_of(b"x", "sha512") == sha512(b"x")


def test_sha512_keys_stay_within_the_safe_alphabet():
    digest = "sha512:" + "f" * 128
    for key in (keys.blob_index_key(7, digest), keys.manifest_key(7, "team/app", digest)):
        assert keys.is_valid_key(key) and "sha512/" + "f" * 128 in key


# -- manifests by sha512 ------------------------------------------------------------------------------------


def test_a_manifest_pushed_by_sha512_is_addressed_by_sha512(reg, tenant, blob_store):
    payload = _image(tenant, blob_store)
    digest = sha512(payload)
    r = reg.put(f"/v2/acme/app/manifests/{digest}", payload, content_type=OCI)
    assert r.status_code == 201, r.content
    assert r["Docker-Content-Digest"] == digest and r["Location"] == f"/v2/acme/app/manifests/{digest}"
    g = reg.get(f"/v2/acme/app/manifests/{digest}")
    assert g.status_code == 200 and g.content == payload and g["Docker-Content-Digest"] == digest
    assert reg.head(f"/v2/acme/app/manifests/{digest}")["Content-Length"] == str(len(payload))
    assert reg.get(f"/v2/acme/app/manifests/sha256:{hashlib.sha256(payload).hexdigest()}").status_code == 404
    assert b"".join(blob_store.open_read(keys.manifest_key(tenant.pk, "app", digest))) == payload
    m = Manifest.objects.get(tenant=tenant, digest=digest)
    assert m.blob_refs.count() == 2 and not Tag.objects.exists()

    # The same bytes pushed by tag are addressed by the canonical sha256.
    r = reg.put("/v2/acme/app/manifests/v1", payload, content_type=OCI)
    assert r.status_code == 201 and r["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()

    r = reg.put(f"/v2/acme/app/manifests/{sha512(b'other')}", payload, content_type=OCI)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"

    assert reg.delete(f"/v2/acme/app/manifests/{digest}").status_code == 202
    assert not Manifest.objects.filter(digest=digest).exists()
    assert blob_store.stat(keys.manifest_key(tenant.pk, "app", digest)) is None and not ObjectDeletion.objects.exists()


def test_a_missing_sha512_blob_is_manifest_blob_unknown(reg, tenant, blob_store):
    payload = _image(tenant, blob_store).replace(sha512(b"sha512 layer").encode(), sha512(b"never pushed").encode())
    r = reg.put("/v2/acme/app/manifests/v1", payload, content_type=OCI)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["digest"] == sha512(b"never pushed")


def test_an_index_of_sha512_children_and_a_sha512_subject_with_referrers(reg, tenant, blob_store):
    child = _image(tenant, blob_store)
    assert reg.put(f"/v2/acme/app/manifests/{sha512(child)}", child, content_type=OCI).status_code == 201
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI, "digest": sha512(child), "size": len(child)}],
        }
    ).encode()
    r = reg.put(f"/v2/acme/app/manifests/{sha512(index)}", index, content_type=OCI_INDEX)
    assert r.status_code == 201, r.content
    assert Manifest.objects.get(digest=sha512(index)).child_refs.get().child.digest == sha512(child)

    subject = {"mediaType": OCI, "digest": sha512(child), "size": len(child)}
    referrer = _image(tenant, blob_store, layer=b"signature", artifactType="application/vnd.example.sig", subject=subject)
    r = reg.put("/v2/acme/app/manifests/sig", referrer, content_type=OCI)
    assert r.status_code == 201 and r["OCI-Subject"] == sha512(child)
    listed = reg.get(f"/v2/acme/app/referrers/{sha512(child)}").json()["manifests"]
    assert [(d["digest"], d["artifactType"]) for d in listed] == [
        ("sha256:" + hashlib.sha256(referrer).hexdigest(), "application/vnd.example.sig")
    ]


# -- GC, audit, rebuild, replication ---------------------------------------------------------------------------


def test_gc_keeps_referenced_sha512_blobs_and_collects_the_rest(reg, tenant, blob_store):
    payload = _image(tenant, blob_store)
    assert reg.put("/v2/acme/app/manifests/v1", payload, content_type=OCI).status_code == 201
    orphan = _sha512_blob(tenant, "app", b"nobody references me", blob_store)
    orphan_key = Blob.objects.get(digest=orphan).storage_key
    from datetime import timedelta

    gc_run_to_completion(tenant=tenant, grace=timedelta(0))
    gc_run_to_completion(tenant=tenant, grace=timedelta(0))  # first run marks, the next sweeps
    assert not Blob.objects.filter(digest=orphan).exists()
    assert blob_store.stat(orphan_key) is None and blob_store.stat(keys.blob_index_key(tenant.pk, orphan)) is None
    assert Blob.objects.filter(tenant=tenant, digest__startswith="sha512:").count() == 2
    assert reg.get("/v2/acme/app/manifests/v1").content == payload


def test_the_audit_re_hashes_sha512_objects_with_sha512(reg, tenant, blob_store):
    payload = _image(tenant, blob_store)
    assert reg.put(f"/v2/acme/app/manifests/{sha512(payload)}", payload, content_type=OCI).status_code == 201
    result = integrity_audit(tenant_id=tenant.pk, full=True, max_batches=None, sample_rate=1.0)
    assert result.run.counts["ok"] == 3 and result.run.counts["deep_checked"] == 3, result.run.counts
    layer = Blob.objects.get(digest=sha512(b"sha512 layer"))
    blob_store.put(layer.storage_key, b"SHA512 LAYER")  # same size, other bytes
    ObjectAudit.objects.filter(blob=layer).update(etag="")  # no baseline: only the re-hash can tell
    result = integrity_audit(tenant_id=tenant.pk, full=True, max_batches=None, sample_rate=1.0)
    assert result.run.counts["corrupt"] == 1 and result.run.counts["ok"] == 2, result.run.counts
    row = ObjectAudit.objects.get(blob=layer)
    assert row.flagged and row.detail["actual_digest"] == sha512(b"SHA512 LAYER")


def test_rebuild_restores_sha512_blobs_and_manifests(reg, tenant, blob_store):
    payload = _image(tenant, blob_store)
    assert reg.put(f"/v2/acme/app/manifests/{sha512(payload)}", payload, content_type=OCI).status_code == 201
    assert reg.put("/v2/acme/app/manifests/v1", payload, content_type=OCI).status_code == 201
    _wipe(tenant)
    report = registry_rebuild(tenant=tenant).as_dict()
    assert report["complete"], report["problems"]
    assert report["blobs"]["restored"] == 2 and report["manifests"]["restored"] == 2 and report["tags"]["restored"] == 1
    assert reg.get(f"/v2/acme/app/manifests/{sha512(payload)}").content == payload
    assert reg.get("/v2/acme/app/manifests/v1").content == payload
    assert Manifest.objects.get(digest=sha512(payload)).blob_refs.count() == 2


def test_replication_copies_and_verifies_with_the_digests_algorithm(tenant, blob_store):
    data = b"replicated by sha512" * 1000
    src = keys.upload_key(tenant.pk, uuid.uuid4())
    blob_store.put(src, data)
    assert rehash(blob_store, src, expected=sha512(data)).digest == sha512(data)
    dest = keys.upload_key(tenant.pk, uuid.uuid4())
    copy_verified(source=blob_store, source_key=src, dest=blob_store, dest_key=dest, size=len(data), digest=sha512(data))
    assert b"".join(blob_store.open_read(dest)) == data
    other = keys.upload_key(tenant.pk, uuid.uuid4())
    with pytest.raises(ContentMismatch):
        copy_verified(source=blob_store, source_key=src, dest=blob_store, dest_key=other, size=len(data), digest=sha512(b"else"))
    assert blob_store.stat(other) is None


def test_sha512_blobs_and_manifests_replicate_byte_identical_and_verify(reg, replicating, replica_store, blob_store):
    payload = _image(replicating, blob_store)
    digest = sha512(payload)
    assert reg.put(f"/v2/acme/app/manifests/{digest}", payload, content_type=OCI).status_code == 201
    counts = replicate_all(replicating)
    assert counts["replicated"] == 3, counts  # two sha512 blobs (backfilled) and the manifest
    for blob in Blob.objects.filter(tenant=replicating):
        assert b"".join(replica_store.open_read(blob.storage_key)) == b"".join(blob_store.open_read(blob.storage_key))
        row = ObjectReplica.objects.get(tenant=replicating, kind="blob", digest=blob.digest)
        assert row.state == "replicated" and replica_verify(replica_id=row.pk, deep=True) == "verified"
    row = ObjectReplica.objects.get(tenant=replicating, kind="manifest", digest=digest)
    assert replica_store.read_small(keys.manifest_key(replicating.pk, "app", digest)) == payload
    assert replica_verify(replica_id=row.pk, deep=True) == "verified"


# -- blobs pushed by sha512 through /v2/ (need the upload part) ---------------------------------------------------


def test_a_monolithic_sha512_upload_is_stored_and_pulled_by_sha512(reg, tenant):
    data = b"monolithic sha512 blob"
    r = reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha512(data)}", data)
    assert r.status_code == 201 and r["Docker-Content-Digest"] == sha512(data), r.content
    assert reg.head(f"/v2/acme/app/blobs/{sha512(data)}")["Content-Length"] == str(len(data))
    r = reg.get(f"/v2/acme/app/blobs/{sha512(data)}")
    assert r.status_code in (200, 307)


def test_a_chunked_sha512_upload_finishes_by_sha512(reg, tenant):
    data = b"chunk one|chunk two"
    loc = reg.post("/v2/acme/app/blobs/uploads/")["Location"]
    r = reg.patch(loc, data[:10], CONTENT_RANGE="0-9")
    assert r.status_code == 202, r.content
    r = reg.patch(r["Location"], data[10:], CONTENT_RANGE=f"10-{len(data) - 1}")
    r = reg.put(r["Location"] + ("&" if "?" in r["Location"] else "?") + f"digest={sha512(data)}")
    assert r.status_code == 201 and r["Docker-Content-Digest"] == sha512(data), r.content
    assert Blob.objects.get(tenant=tenant, digest=sha512(data)).size == len(data)


def test_an_image_pushed_entirely_by_sha512_pulls_back(reg, tenant):
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer by sha512"
    for data in (config, layer):
        assert reg.post(f"/v2/acme/app/blobs/uploads/?digest={sha512(data)}", data).status_code == 201
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha512(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha512(layer), "size": len(layer)}],
    }
    payload = json.dumps(doc).encode()
    assert reg.put(f"/v2/acme/app/manifests/{sha512(payload)}", payload, content_type=OCI).status_code == 201
    assert reg.get(f"/v2/acme/app/manifests/{sha512(payload)}").content == payload
