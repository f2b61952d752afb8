"""Manifests: every supported kind, exact bytes, negotiation, validation, delete, referrers."""

import json

import pytest

from gateway.registry.models import Manifest, Tag
from gateway.storage import keys
from tests.helpers import sha
from tests.registry.conftest import fixture_manifest

pytestmark = pytest.mark.django_db

OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = b"{}"


def blobs(reg, repo="app"):
    config, layer = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}', b"layer bytes"
    return {
        "config": reg.push_blob(repo, config),
        "config_size": len(config),
        "layer0": reg.push_blob(repo, layer),
        "layer0_size": len(layer),
    }


def put(reg, ref, payload, media_type, repo="app"):
    return reg.put(f"/v2/acme/{repo}/manifests/{ref}", payload, content_type=media_type)


@pytest.mark.parametrize("name,media_type", [("docker-manifest.json", DOCKER), ("oci-manifest.json", OCI)])
def test_image_manifests_round_trip_as_exact_bytes(reg, name, media_type):
    payload = fixture_manifest(name, **blobs(reg))
    r = put(reg, "v1", payload, media_type)
    assert r.status_code == 201, r.content
    digest = sha(payload)
    assert r["Docker-Content-Digest"] == digest and r["Location"] == f"/v2/acme/app/manifests/{digest}"
    for ref in ("v1", digest):
        g = reg.get(f"/v2/acme/app/manifests/{ref}", HTTP_ACCEPT=f"{media_type}, {OCI_INDEX}")
        assert g.status_code == 200 and g.content == payload
        assert g["Content-Type"] == media_type and g["Docker-Content-Digest"] == digest
        h = reg.head(f"/v2/acme/app/manifests/{ref}", HTTP_ACCEPT=media_type)
        assert h.status_code == 200 and h["Content-Length"] == str(len(payload)) and h.content == b""


def test_push_by_digest_without_a_tag(reg):
    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    digest = sha(payload)
    assert put(reg, digest, payload, OCI).status_code == 201
    assert reg.get(f"/v2/acme/app/manifests/{digest}").content == payload
    assert not Tag.objects.exists()
    r = put(reg, sha(b"other"), payload, OCI)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


@pytest.mark.parametrize("index_name,index_type", [("docker-manifest-list.json", DOCKER_LIST), ("oci-index.json", OCI_INDEX)])
def test_indexes_need_their_children(reg, tenant, blob_store, index_name, index_type):
    b = blobs(reg)
    child0 = fixture_manifest("docker-manifest.json", **b)
    child1 = fixture_manifest("oci-manifest.json", **b)
    values = {"child0": sha(child0), "child0_size": len(child0), "child1": sha(child1), "child1_size": len(child1)}
    index = fixture_manifest(index_name, **values)
    r = put(reg, "multi", index, index_type)
    # A missing child is a bad request naming an unknown manifest (Distribution: 400 MANIFEST_UNKNOWN).
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["digest"] == sha(child0)
    assert not Manifest.objects.exists() and not blob_store.stat(keys.tag_key(tenant.pk, "app", "multi"))
    assert put(reg, sha(child0), child0, DOCKER).status_code == 201
    assert put(reg, sha(child1), child1, OCI).status_code == 201
    assert put(reg, "multi", index, index_type).status_code == 201
    assert reg.get("/v2/acme/app/manifests/multi", HTTP_ACCEPT=index_type).content == index
    # A child still referenced by an index cannot be deleted.
    r = reg.delete(f"/v2/acme/app/manifests/{sha(child0)}")
    assert r.status_code == 403 and "index" in r.json()["errors"][0]["message"]


def test_missing_blobs_are_manifest_blob_unknown(reg):
    b = blobs(reg)
    b["layer0"] = sha(b"never pushed")
    r = put(reg, "v1", fixture_manifest("oci-manifest.json", **b), OCI)
    assert r.status_code == 400  # as Distribution, and what clients expect of a push naming an unknown blob
    err = r.json()["errors"][0]
    assert err["code"] == "MANIFEST_BLOB_UNKNOWN" and err["detail"]["digest"] == b["layer0"]
    assert not Manifest.objects.exists()


def test_blob_of_another_repository_does_not_count(reg):
    b = blobs(reg, repo="other")
    r = put(reg, "v1", fixture_manifest("oci-manifest.json", **b), OCI)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize(
    "payload,content_type,code",
    [
        (b"not json", OCI, "MANIFEST_INVALID"),
        (b"[]", OCI, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2}', "application/vnd.example.unknown+json", "MANIFEST_INVALID"),
        (b'{"schemaVersion": 3, "config": {}}', OCI, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "mediaType": "' + DOCKER.encode() + b'", "config": {}, "layers": []}', OCI, "MANIFEST_INVALID"),
        (
            b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []}',
            OCI,
            "MANIFEST_INVALID",
        ),
        (
            b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
            + ("sha256:" + "a" * 64).encode()
            + b'", "size": -1}, "layers": []}',
            OCI,
            "MANIFEST_INVALID",
        ),
        (b'{"schemaVersion": 2, "manifests": "nope"}', OCI_INDEX, "MANIFEST_INVALID"),
        (b"", OCI, "MANIFEST_INVALID"),
    ],
)
def test_invalid_manifests_are_refused_cleanly(reg, payload, content_type, code):
    r = put(reg, "bad", payload, content_type)
    assert r.status_code == 400, r.content
    assert r.json()["errors"][0]["code"] == code
    assert not Manifest.objects.exists()


def test_schema1_is_refused_with_a_clear_message(reg):
    r = put(reg, "old", fixture_manifest("schema1-manifest.json"), "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert r.status_code == 400 and "schema 1" in r.json()["errors"][0]["message"]


def test_manifest_over_4_mib_is_413(reg):
    big = json.dumps({"schemaVersion": 2, "annotations": {"x": "a" * (4 * 1024 * 1024)}}).encode()
    r = put(reg, "big", big, OCI)
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "MANIFEST_INVALID"


@pytest.mark.parametrize("tag", [".hidden", "-dash", "a" * 129, "sp ace", "ümlaut"])
def test_bad_tags_are_refused(reg, tag):
    from urllib.parse import quote

    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    r = put(reg, quote(tag), payload, OCI)
    assert r.status_code in (400, 404), r.content
    assert r.status_code != 500
    assert not Manifest.objects.exists()


def test_accept_negotiation(reg):
    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    put(reg, "v1", payload, OCI)
    assert reg.get("/v2/acme/app/manifests/v1").status_code == 200  # no Accept: anything goes
    assert reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=DOCKER).status_code == 200  # an image type
    r = reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI_INDEX)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_tags_move_and_delete(reg):
    b = blobs(reg)
    one = fixture_manifest("oci-manifest.json", **b)
    two = fixture_manifest("docker-manifest.json", **b)
    put(reg, "latest", one, OCI)
    put(reg, "latest", two, DOCKER)
    assert reg.get("/v2/acme/app/manifests/latest").content == two
    assert reg.delete("/v2/acme/app/manifests/latest").status_code == 202
    assert reg.get("/v2/acme/app/manifests/latest").status_code == 404
    assert reg.get(f"/v2/acme/app/manifests/{sha(two)}").status_code == 200  # only the tag went
    assert reg.delete(f"/v2/acme/app/manifests/{sha(two)}").status_code == 202
    assert reg.get(f"/v2/acme/app/manifests/{sha(two)}").status_code == 404
    assert reg.delete(f"/v2/acme/app/manifests/{sha(two)}").json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_unknown_repository_and_manifest(reg):
    r = reg.get("/v2/acme/nothere/manifests/v1")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    blobs(reg)
    r = reg.get("/v2/acme/app/manifests/v9")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_referrers_with_subject_and_artifact_type_filter(reg):
    subject_payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    subject = sha(subject_payload)
    sbom = b'{"spdx": true}'
    reg.push_blob("app", EMPTY)
    values = {
        "layer0": reg.push_blob("app", sbom),
        "layer0_size": len(sbom),
        "subject": subject,
        "subject_size": len(subject_payload),
    }
    artifact = fixture_manifest("oci-artifact.json", **values)
    # The subject need not exist yet (OCI 1.1).
    r = put(reg, sha(artifact), artifact, OCI)
    assert r.status_code == 201 and r["OCI-Subject"] == subject
    put(reg, "v1", subject_payload, OCI)
    r = reg.get(f"/v2/acme/app/referrers/{subject}")
    assert r.status_code == 200 and r["Content-Type"] == OCI_INDEX
    index = r.json()
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    assert index["manifests"] == [
        {
            "mediaType": OCI,
            "digest": sha(artifact),
            "size": len(artifact),
            "artifactType": "application/vnd.example.sbom.v1+json",
            "annotations": {"org.opencontainers.image.created": "2026-11-29T00:00:00Z"},
        }
    ]
    r = reg.get(f"/v2/acme/app/referrers/{subject}?artifactType=application/vnd.example.other")
    assert r.json()["manifests"] == [] and r["OCI-Filters-Applied"] == "artifactType"
    r = reg.get(f"/v2/acme/app/referrers/{sha(b'nothing')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = reg.get("/v2/acme/app/referrers/notadigest")
    assert r.status_code == 400


def test_manifest_bytes_are_in_the_bucket(reg, tenant, blob_store):
    from gateway.storage import keys

    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    put(reg, "v1", payload, OCI)
    assert blob_store.read_small(keys.manifest_key(tenant.pk, "app", sha(payload))) == payload
    tag_doc = json.loads(blob_store.read_small(keys.tag_key(tenant.pk, "app", "v1")))
    assert tag_doc == {"tag": "v1", "digest": sha(payload)}


@pytest.mark.parametrize("ref", [".INVALID_MANIFEST_NAME", "-dash", "a" * 129, "sp ace", "t\u00e9g", "a%00b"])
def test_a_reference_that_is_not_a_tag_names_no_manifest(reg, ref):
    """GET/HEAD/DELETE answer 404 MANIFEST_UNKNOWN, as the OCI conformance suite and Distribution expect; PUT is a 400."""
    reg.push_image("app", "v1", [b"layer"])
    for method in ("GET", "DELETE"):
        r = reg.client.generic(method, f"/v2/acme/app/manifests/{ref}", b"", **reg.h())
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN", (method, r.content)
    assert reg.head(f"/v2/acme/app/manifests/{ref}").status_code == 404
    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    r = put(reg, ref, payload, OCI)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_INVALID", r.content
    assert Manifest.objects.count() == 1 and list(Tag.objects.values_list("name", flat=True)) == ["v1"]


def test_a_malformed_digest_reference_stays_digest_invalid(reg):
    for method in ("GET", "DELETE"):
        r = reg.client.generic(method, "/v2/acme/app/manifests/sha256:" + "Z" * 64, b"", **reg.h())
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


@pytest.mark.parametrize("repo", ["app", "r" * 250, "a/b/" + "c" * 200])  # 250: the longest name under /v2/acme/
def test_a_128_character_tag_works_end_to_end(reg, tenant, blob_store, repo):
    tag = "T" + "a_-." * 31 + "Zz9"  # 128 characters of the spec's grammar, upper case included
    assert len(tag) == 128
    payload = fixture_manifest("oci-manifest.json", **blobs(reg, repo=repo))
    r = put(reg, tag, payload, OCI, repo=repo)
    assert r.status_code == 201, r.content
    assert reg.get(f"/v2/acme/{repo}/manifests/{tag}").content == payload
    assert reg.get(f"/v2/acme/{repo}/tags/list").json()["tags"] == [tag]
    key = keys.tag_key(tenant.pk, repo, tag)
    assert json.loads(b"".join(blob_store.open_read(key))) == {"tag": tag, "digest": sha(payload)}
    assert len(key) <= keys.MAX_KEY and all(len(part) <= keys.MAX_COMPONENT for part in key.split("/"))
    assert reg.delete(f"/v2/acme/{repo}/manifests/{tag}").status_code == 202
    assert blob_store.stat(key) is None and not Tag.objects.exists()


def _bucket_matches_rows(tenant, blob_store, repo: str) -> None:
    """Every manifest and tag row has its object, with the right content, and no object outlives its row."""
    rows = {m.digest for m in Manifest.objects.filter(tenant=tenant, repository__name=repo)}
    tags = dict(Tag.objects.filter(tenant=tenant, repository__name=repo).values_list("name", "manifest__digest"))
    prefix = keys.repos_prefix(tenant.pk) + repo + "/"
    objects = {o.key for o in blob_store.list(prefix)}
    assert objects == {keys.manifest_key(tenant.pk, repo, d) for d in rows} | {keys.tag_key(tenant.pk, repo, t) for t in tags}
    for name, digest in tags.items():
        assert json.loads(b"".join(blob_store.open_read(keys.tag_key(tenant.pk, repo, name)))) == {"tag": name, "digest": digest}


@pytest.mark.django_db(transaction=True)
def test_a_delete_racing_a_re_push_never_leaves_a_row_without_its_object(reg, tenant, blob_store):
    """DELETE by digest and a re-push of the same manifest (by digest and under its tag) start together, 20 times.

    Whatever the interleaving, the bucket ends up holding exactly the committed rows' objects
    (the delete's objects go through the checked drain, under the key locks pushes take).
    """
    import threading

    from django.db import connections

    from gateway.registry.models import Repository
    from gateway.registry.services.manifests import manifest_delete, manifest_put

    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    digest = sha(payload)
    repository = Repository.objects.get(tenant=tenant, name="app")
    errors: list[BaseException] = []
    for round_ in range(20):
        if not Manifest.objects.filter(digest=digest).exists():
            manifest_put(tenant=tenant, repository=repository, reference="v1", payload=payload, content_type=OCI)
        barrier = threading.Barrier(2)

        def run(fn, barrier=barrier, **kwargs):
            try:
                barrier.wait(30)
                fn(tenant=tenant, repository=repository, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connections.close_all()

        ref = digest if round_ % 2 else "v1"  # re-push by digest, or under the tag (which moves the tag object too)
        threads = [
            threading.Thread(target=run, args=(manifest_delete,), kwargs={"reference": digest}),
            threading.Thread(
                target=run, args=(manifest_put,), kwargs={"reference": ref, "payload": payload, "content_type": OCI}
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        _bucket_matches_rows(tenant, blob_store, "app")


def test_a_failed_push_puts_the_bucket_back_to_what_the_rows_say(reg, tenant, blob_store):
    """What a push that failed after writing leaves behind is undone: objects without rows go, a tag object says its row's digest."""
    from gateway.registry.models import Repository
    from gateway.registry.services.manifests import _objects_reconcile

    old = reg.push_image("app", "v1", [b"old layer"])[0]
    payload = fixture_manifest("oci-manifest.json", **blobs(reg))
    new = sha(payload)
    # The state of a push of `payload` under v1 and v2 that wrote its objects and then did not commit.
    for tag in ("v1", "v2"):
        blob_store.put(keys.manifest_key(tenant.pk, "app", new), payload)
        blob_store.put_json(keys.tag_key(tenant.pk, "app", tag), {"tag": tag, "digest": new})
        _objects_reconcile(tenant=tenant, repository=Repository.objects.get(name="app"), digest=new, tag=tag)
    _bucket_matches_rows(tenant, blob_store, "app")
    assert json.loads(b"".join(blob_store.open_read(keys.tag_key(tenant.pk, "app", "v1"))))["digest"] == old
