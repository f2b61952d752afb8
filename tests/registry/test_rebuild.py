"""Rebuilding a tenant's registry from the bucket alone (index objects, manifest bytes, tag objects).

Images are pushed through the real /v2/ API into SeaweedFS, every registry row of the tenant
is deleted, the rebuild runs, and everything is pulled back through the API byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from accounts.models import User
from gateway.core.errors import ValidationError
from gateway.registry.models import Blob, BlobUpload, Manifest, ManifestBlob, ManifestChild, Repository, RepositoryBlob, Tag
from gateway.registry.services.rebuild import registry_rebuild
from gateway.storage import get_blob_store, keys
from tests.factories import make_tenant
from tests.helpers import Reg, command, sha

OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join([OCI, OCI_INDEX, DOCKER, "application/vnd.docker.distribution.manifest.list.v2+json"])
CONFIG = b'{"architecture":"amd64","os":"linux"}'


@dataclass
class Pushed:
    """What was pushed: tag → (digest, payload, media type) and blob digest → bytes, per repository."""

    tags: dict[tuple[str, str], tuple[str, bytes, str]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)


def _image(
    reg: Reg, pushed: Pushed, repo: str, ref: str | None, layers: list[bytes], config: bytes = CONFIG, media_type: str = OCI
) -> str:
    cfg = reg.push_blob(repo, config)
    pushed.blobs[(repo, cfg)] = config
    descs = []
    for layer in layers:
        descs.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": reg.push_blob(repo, layer), "size": len(layer)}
        )
        pushed.blobs[(repo, sha(layer))] = layer
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
        "layers": descs,
    }
    payload = json.dumps(doc, indent=1).encode()  # not the canonical form: bytes must survive as pushed
    digest = sha(payload)
    r = reg.push_manifest(repo, ref or digest, payload, media_type)  # no ref: by digest, as buildx pushes an index's images
    assert r.status_code == 201, r.content
    pushed.manifests[(repo, digest)] = payload
    if ref:
        pushed.tags[(repo, ref)] = (digest, payload, media_type)
    return digest


def _push_everything(reg: Reg) -> Pushed:
    """Repo `app`: one image under two tags. Repo `multi`: two images by digest and an OCI index over them, tagged."""
    pushed = Pushed()
    digest = _image(reg, pushed, "app", "1", [b"app-layer-1", b"app-layer-2" * 1000])
    payload = pushed.manifests[("app", digest)]
    assert reg.push_manifest("app", "latest", payload, OCI).status_code == 201
    pushed.tags[("app", "latest")] = (digest, payload, OCI)
    children = []
    for arch in ("amd64", "arm64"):
        cfg = json.dumps({"architecture": arch, "os": "linux"}).encode()
        layer = f"{arch}-layer".encode()
        d = _image(reg, pushed, "team/multi", None, [layer, b"shared-layer"], config=cfg)
        children.append(
            {
                "mediaType": OCI,
                "digest": d,
                "size": len(pushed.manifests[("team/multi", d)]),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = reg.push_manifest("team/multi", "v1", index, OCI_INDEX)
    assert r.status_code == 201, r.content
    pushed.manifests[("team/multi", sha(index))] = index
    pushed.tags[("team/multi", "v1")] = (sha(index), index, OCI_INDEX)
    return pushed


def _wipe(tenant) -> None:
    """Delete every registry row of the tenant (the tenant, its users and tokens stay)."""
    Tag.objects.filter(tenant=tenant).delete()
    ManifestChild.objects.filter(parent__tenant=tenant).delete()
    ManifestBlob.objects.filter(manifest__tenant=tenant).delete()
    Manifest.objects.filter(tenant=tenant).delete()
    RepositoryBlob.objects.filter(tenant=tenant).delete()
    BlobUpload.objects.filter(tenant=tenant).delete()
    Blob.objects.filter(tenant=tenant).delete()
    Repository.objects.filter(tenant=tenant).delete()
    assert not Repository.objects.filter(tenant=tenant).exists() and not Blob.objects.filter(tenant=tenant).exists()


def _assert_everything_pulls(reg: Reg, pushed: Pushed, prefix: str = "/v2/acme") -> None:
    for (repo, tag), (digest, payload, media_type) in pushed.tags.items():
        r = reg.get(f"{prefix}/{repo}/manifests/{tag}", HTTP_ACCEPT=ACCEPT)
        assert r.status_code == 200, (repo, tag, r.content)
        assert r.content == payload
        assert r["Docker-Content-Digest"] == digest and r["Content-Type"] == media_type
    for (repo, digest), payload in pushed.manifests.items():
        r = reg.get(f"{prefix}/{repo}/manifests/{digest}", HTTP_ACCEPT=ACCEPT)
        assert r.status_code == 200 and r.content == payload, (repo, digest)
    for (repo, digest), data in pushed.blobs.items():
        r = reg.get(f"{prefix}/{repo}/blobs/{digest}")
        assert r.status_code == 200, (repo, digest, r.content)
        assert b"".join(r.streaming_content) == data
    for repo in {repo for repo, _ in pushed.tags}:
        tags = sorted(t for r, t in pushed.tags if r == repo)
        assert reg.get(f"{prefix}/{repo}/tags/list").json()["tags"] == tags


def _expected_counts(pushed: Pushed) -> dict[str, int]:
    return {
        "blobs": len({d for _, d in pushed.blobs}),
        "repositories": len({r for r, _ in pushed.manifests}),
        "manifests": len(pushed.manifests),
        "tags": len(pushed.tags),
    }


@pytest.mark.django_db
def test_rebuild_restores_everything_byte_identical_and_is_idempotent(reg, tenant):
    pushed = _push_everything(reg)
    index_digest = pushed.tags[("team/multi", "v1")][0]
    _wipe(tenant)
    assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=ACCEPT).status_code == 404

    report = registry_rebuild(tenant=tenant).as_dict()

    expected = _expected_counts(pushed)
    for kind, n in expected.items():
        assert report[kind] == {"restored": n, "kept": 0, "missing": 0}, (kind, report)
    assert report["complete"] and report["problems"] == []
    _assert_everything_pulls(reg, pushed)
    index = Manifest.objects.get(tenant=tenant, repository__name="team/multi", digest=index_digest)
    assert index.media_type == OCI_INDEX
    assert index.child_refs.count() == 2
    assert Manifest.objects.get(tenant=tenant, repository__name="app", digest=pushed.tags[("app", "1")][0]).blob_refs.count() == 3

    again = registry_rebuild(tenant=tenant).as_dict()
    for kind, n in expected.items():
        assert again[kind] == {"restored": 0, "kept": n, "missing": 0}, (kind, again)
    assert again["objects_written"] == 0
    # The restored registry takes pushes as before.
    _image(reg, pushed, "app", "2", [b"after-rebuild"])
    _assert_everything_pulls(reg, pushed)


@pytest.mark.django_db
def test_rebuild_keeps_rows_that_exist(reg, tenant):
    pushed = _push_everything(reg)
    Tag.objects.filter(tenant=tenant, name="latest").delete()  # lose one tag only
    report = registry_rebuild(tenant=tenant).as_dict()
    assert report["tags"] == {"restored": 1, "kept": len(pushed.tags) - 1, "missing": 0}
    assert report["blobs"]["restored"] == report["manifests"]["restored"] == report["repositories"]["restored"] == 0
    _assert_everything_pulls(reg, pushed)


@pytest.mark.django_db
def test_missing_or_corrupt_objects_are_reported_not_restored(reg, tenant):
    pushed = Pushed()
    good = _image(reg, pushed, "app", "good", [b"fine-layer"])
    bad = _image(reg, pushed, "app", "bad", [b"doomed-layer"])
    store = get_blob_store()
    doomed = Blob.objects.get(tenant=tenant, digest=sha(b"doomed-layer"))
    store.delete([doomed.storage_key])  # the data object is gone; its index object stays
    # An index object whose data object never existed, and manifest bytes that do not match their digest.
    ghost = sha(b"ghost")
    store.put(
        keys.blob_index_key(tenant.pk, ghost),
        json.dumps({"digest": ghost, "size": 5, "key": keys.uploads_prefix(tenant.pk) + "nothing"}).encode(),
    )
    liar = sha(b"the real manifest")
    store.put(keys.manifest_key(tenant.pk, "app", liar), b'{"schemaVersion": 2}')
    _wipe(tenant)

    report = registry_rebuild(tenant=tenant).as_dict()

    problems = {(p["kind"], p.get("digest", "")): p["reason"] for p in report["problems"]}
    assert "is missing" in problems[("blob", doomed.digest)]
    assert "is missing" in problems[("blob", ghost)]
    assert f"blob {doomed.digest} is not restorable" in problems[("manifest", bad)]
    assert "hash to" in problems[("manifest", liar)]
    assert any(p["kind"] == "tag" and p["tag"] == "bad" for p in report["problems"])
    assert report["blobs"] == {"restored": 2, "kept": 0, "missing": 2}  # config + fine-layer
    assert report["manifests"] == {"restored": 1, "kept": 0, "missing": 2}
    assert report["tags"] == {"restored": 1, "kept": 0, "missing": 1}
    assert not report["complete"]
    assert not Blob.objects.filter(tenant=tenant, digest__in=[doomed.digest, ghost]).exists()
    assert not Manifest.objects.filter(tenant=tenant, digest__in=[bad, liar]).exists()
    r = reg.get("/v2/acme/app/manifests/good", HTTP_ACCEPT=ACCEPT)
    assert r.status_code == 200 and r.content == pushed.manifests[("app", good)]
    assert reg.get("/v2/acme/app/manifests/bad", HTTP_ACCEPT=ACCEPT).status_code == 404


@pytest.mark.django_db
def test_an_index_object_with_the_wrong_size_is_reported(reg, tenant):
    pushed = Pushed()
    _image(reg, pushed, "app", "1", [b"layer"])
    blob = Blob.objects.get(tenant=tenant, digest=sha(b"layer"))
    get_blob_store().put(
        keys.blob_index_key(tenant.pk, blob.digest),
        json.dumps({"digest": blob.digest, "size": 999, "key": blob.storage_key}).encode(),
    )
    _wipe(tenant)
    report = registry_rebuild(tenant=tenant).as_dict()
    [problem] = [p for p in report["problems"] if p["kind"] == "blob"]
    assert problem["digest"] == blob.digest and "is 5 bytes, the index says 999" in problem["reason"]


@pytest.mark.django_db
def test_an_index_object_pointing_at_another_tenants_data_is_refused(reg, tenant):
    pushed = Pushed()
    _image(reg, pushed, "app", "1", [b"acme-secret"])
    victim = Blob.objects.get(tenant=tenant, digest=sha(b"acme-secret"))
    intruder = make_tenant("intruder")
    doc = {"digest": victim.digest, "size": victim.size, "key": victim.storage_key}
    get_blob_store().put(keys.blob_index_key(intruder.pk, victim.digest), json.dumps(doc).encode())
    report = registry_rebuild(tenant=intruder).as_dict()
    assert report["blobs"] == {"restored": 0, "kept": 0, "missing": 1}
    assert "belongs to another existing tenant" in report["problems"][0]["reason"]
    assert not Blob.objects.filter(tenant=intruder).exists()


@pytest.mark.django_db
def test_rebuild_into_a_new_tenant_from_an_old_prefix(reg, tenant):
    pushed = _push_everything(reg)
    old_id = tenant.pk
    _wipe(tenant)
    tenant.delete()  # the tenant row is gone too; the bucket still holds t/<old_id>/
    owner = User.objects.get(username="owner")
    new = make_tenant("acme2", owner=owner)

    report = registry_rebuild(tenant=new, source_tenant_id=old_id).as_dict()
    assert report["complete"] and report["source_tenant_id"] == old_id
    assert report["objects_written"] == sum(_expected_counts(pushed)[k] for k in ("blobs", "manifests", "tags"))
    reg2 = Reg(reg.client, reg.auth, prefix="/v2/acme2")
    _assert_everything_pulls(reg2, pushed, prefix="/v2/acme2")

    # The new tenant's own prefix now describes it: a second disaster is recoverable from it alone.
    _wipe(new)
    report = registry_rebuild(tenant=new).as_dict()
    assert report["complete"] and report["manifests"]["restored"] == len(pushed.manifests)
    _assert_everything_pulls(reg2, pushed, prefix="/v2/acme2")


@pytest.mark.django_db
def test_bad_source_tenant_ids_are_refused(reg, tenant):
    other = make_tenant("other")
    with pytest.raises(ValidationError, match="belongs to the existing tenant 'other'"):
        registry_rebuild(tenant=tenant, source_tenant_id=other.pk)
    for bad in (0, -3, True):
        with pytest.raises(ValidationError, match="positive integer"):
            registry_rebuild(tenant=tenant, source_tenant_id=bad)


@pytest.mark.django_db(transaction=True)
def test_the_command_rebuilds_and_reports(reg, tenant):
    pushed = _push_everything(reg)
    _wipe(tenant)

    result = command("registry_rebuild", "acme")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for kind, n in _expected_counts(pushed).items():
        assert report[kind] == {"restored": n, "kept": 0, "missing": 0}, (kind, report)
    _assert_everything_pulls(reg, pushed)

    result = command("registry_rebuild", "acme")
    assert result.returncode == 0 and json.loads(result.stdout)["manifests"]["kept"] == len(pushed.manifests)

    result = command("registry_rebuild", "nope")
    assert result.returncode != 0 and "no tenant with slug 'nope'" in result.stderr
    other = make_tenant("other")
    result = command("registry_rebuild", "acme", "--from-tenant-id", str(other.pk))
    assert result.returncode != 0 and "belongs to the existing tenant 'other'" in result.stderr
    result = command("registry_rebuild", "acme", "--from-tenant-id", "x")
    assert result.returncode != 0 and "invalid int value" in result.stderr


# -- after a fuzz run of manifest pushes (failed pushes must leave nothing a rebuild trips over) ---------------


def _fuzz_payload(rnd, good: list[bytes], unknown: str) -> bytes:
    """A manifest: one of the good ones, or one broken in a seeded way (most of these must be refused)."""
    base = rnd.choice(good)
    doc = json.loads(base)
    kind = rnd.randrange(14)
    if kind == 0:
        return base
    if kind == 1:
        i = rnd.randrange(len(base))
        return base[:i] + bytes([rnd.randrange(256)]) + base[i + 1 :]
    if kind == 2:
        return base[: rnd.randrange(len(base))]
    if kind == 3:
        return json.dumps({**doc, "annotations": {"k": "v\u0000" * rnd.randint(1, 3)}}).encode()
    if kind == 4:
        return json.dumps({**doc, "annotations": {"k": "\ud800"}}).encode()
    if kind == 5:
        depth = rnd.choice([70, 1000, 20000])
        return base[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == 6:
        return json.dumps({**doc, "artifactType": "application/" + "x" * rnd.randint(244, 400)}).encode()
    if kind == 7:
        return b'{"schemaVersion": 2, ' + base[1:]  # a duplicate key
    if kind == 8:
        return rnd.choice([b"\xef\xbb\xbf" + base, base.decode().encode("utf-16")])
    if kind == 9 and "layers" in doc:
        return json.dumps({**doc, "layers": [{**doc["layers"][0], "digest": unknown}]}).encode()  # a blob the repository lacks
    if kind == 10 and "layers" in doc:
        return json.dumps({**doc, "layers": [{**doc["layers"][0], "size": doc["layers"][0]["size"] + 1}]}).encode()
    if kind == 11:
        return json.dumps({**doc, "annotations": {"fuzz": str(rnd.random())}}).encode()  # valid: a new manifest
    if kind == 12:
        return json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI, "digest": unknown, "size": 3}]}
        ).encode()
    return json.dumps({**doc, "mediaType": "application/vnd.example+json"}).encode()


@pytest.mark.django_db
def test_rebuild_after_a_fuzz_run_of_pushes_restores_exactly_what_committed(reg, tenant):
    """400 seeded pushes (most invalid or refused, some valid, tags moving, some deletes), then a rebuild into a fresh tenant.

    Afterwards the bucket holds exactly the committed rows' manifest and tag objects, and the
    rebuild (of the old prefix, into a new tenant) recreates exactly the rows there were.
    """
    import random

    rnd = random.Random(20261201)
    pushed = Pushed()
    good = [pushed.manifests[("app", _image(reg, pushed, "app", f"seed{i}", [f"layer {i}".encode()]))] for i in range(3)]
    Tag.objects.filter(tenant=tenant, name="seed0").update(immutable=True)  # moves of it must be refused
    unknown = sha(b"never pushed")
    store = get_blob_store()
    statuses: dict[int, int] = {}
    reg.client.raise_request_exception = False
    for _ in range(400):
        action = rnd.randrange(20)
        if action == 0:
            r = reg.delete(f"/v2/acme/app/manifests/{rnd.choice(['seed1', 'seed2', 't0', 't1', 't2', 'gone'])}")
        elif action == 1 and Manifest.objects.filter(tenant=tenant).exists():
            r = reg.delete(
                f"/v2/acme/app/manifests/{rnd.choice(list(Manifest.objects.filter(tenant=tenant).order_by('digest').values_list('digest', flat=True)))}"
            )
        else:
            payload = _fuzz_payload(rnd, good, unknown)
            ref = rnd.choice(["t0", "t1", "t2", "seed0", sha(payload), sha(payload + b" "), ".bad"])
            r = reg.put(f"/v2/acme/app/manifests/{ref}", payload, content_type=rnd.choice([OCI, OCI, "", "application/json"]))
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.content[:300]
        if r.status_code >= 400 and r.content:
            assert r.json()["errors"][0]["code"], r.content
    assert statuses.get(201, 0) >= 20 and sum(n for s, n in statuses.items() if s >= 400) >= 200, statuses

    # Row <=> object, for manifests and tags, and every tag object names its row's digest.
    manifests = {
        (m.repository.name, m.digest): bytes(m.payload)
        for m in Manifest.objects.filter(tenant=tenant).select_related("repository")
    }
    tags = {
        (t.repository.name, t.name): t.manifest.digest
        for t in Tag.objects.filter(tenant=tenant).select_related("repository", "manifest")
    }
    objects = {o.key for o in store.list(keys.repos_prefix(tenant.pk))}
    assert objects == {keys.manifest_key(tenant.pk, r, d) for r, d in manifests} | {
        keys.tag_key(tenant.pk, r, t) for r, t in tags
    }
    for (repo, tag), digest in tags.items():
        assert json.loads(b"".join(store.open_read(keys.tag_key(tenant.pk, repo, tag))))["digest"] == digest

    # Leftovers of older versions that did write for failed pushes: reported, never a crash.
    nul = json.dumps({**json.loads(good[0]), "annotations": {"k": "\u0000"}}).encode()
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    strays = {
        keys.manifest_key(tenant.pk, "app", sha(nul)): nul,
        keys.manifest_key(tenant.pk, "app", sha(deep)): deep,
        keys.tag_key(tenant.pk, "app", "stray"): json.dumps({"tag": "stray", "digest": unknown}).encode(),
        keys.tag_key(tenant.pk, "app", "deep"): b"[" * 30000 + b"]" * 30000,
        keys.repos_prefix(tenant.pk) + "app/_tags/zz": b"{}",
        keys.repos_prefix(tenant.pk) + "app/_tags/b32.0189": b"{}",
    }
    for key, data in strays.items():
        store.put(key, data)

    old_id = tenant.pk
    _wipe(tenant)
    tenant.delete()
    new = make_tenant("acme2", owner=User.objects.get(username="owner"))
    report = registry_rebuild(tenant=new, source_tenant_id=old_id).as_dict()

    assert report["manifests"]["restored"] == len(manifests) and report["tags"]["restored"] == len(tags), report
    assert sorted(p["key"] for p in report["problems"]) == sorted(strays), report["problems"]
    rebuilt = {
        (m.repository.name, m.digest): bytes(m.payload) for m in Manifest.objects.filter(tenant=new).select_related("repository")
    }
    assert rebuilt == manifests
    assert {
        (t.repository.name, t.name): t.manifest.digest
        for t in Tag.objects.filter(tenant=new).select_related("repository", "manifest")
    } == tags
