"""Retention policies (keep last N, regexes, age; immutable tags never go) and immutable-tag pushes.

Real PostgreSQL and SeaweedFS; images pushed through /v2/; `manage.py retention` / `tag_immutable` through call_command.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.core.errors import NotFound
from gateway.registry import selectors
from gateway.registry.models import DeletedObject, JobRun, Manifest, ObjectDeletion, RetentionPolicy, Tag
from gateway.registry.services.gc import gc_run_to_completion
from gateway.registry.services.retention import (
    RetentionPolicyInvalid,
    _Doomed,
    _tags_delete,
    retention_apply_to_completion,
    retention_policy_set,
    tag_immutable_set,
)
from gateway.storage import keys
from tests.helpers import command
from tests.registry.test_gc import config, pulls_back, push_image

OCI = "application/vnd.oci.image.manifest.v1+json"


def tags(tenant, repo: str = "app") -> set[str]:
    return set(Tag.objects.filter(tenant=tenant, repository__name=repo).values_list("name", flat=True))


def age(tenant, name: str, days: float, repo: str = "app") -> None:
    Tag.objects.filter(tenant=tenant, repository__name=repo, name=name).update(
        last_pushed_at=timezone.now() - timedelta(days=days)
    )


def tag_object(store, tenant, name: str, repo: str = "app") -> dict | None:
    key = keys.tag_key(tenant.pk, repo, name)
    return json.loads(store.read_small(key)) if store.stat(key) else None


@pytest.fixture
def images(reg, tenant):
    """Seven tags on seven images, pushed 1..7 days ago (v7 the newest); release-1 is old but matches keep_regex."""
    out = {}
    for i, name in enumerate(["v1", "v2", "v3", "v4", "release-1", "v6", "v7"]):
        out[name] = push_image(reg, "app", name, [f"layer of {name}".encode()], config(name))
        age(tenant, name, days=10 - i)  # v1: 10 days, v7: 4 days
    return out


@pytest.mark.django_db
def test_dry_run_lists_exactly_what_the_real_run_deletes(reg, tenant, images, blob_store, settings):
    retention_policy_set(tenant=tenant, keep_last=2, older_than_days=5, keep_regex=r"release-.*")
    tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="v2")

    dry = retention_apply_to_completion(tenant=tenant, dry_run=True)
    expected = {"v1", "v3", "v4"}  # v2 immutable, release-1 kept by regex, v6/v7 the last 2 (and too young)
    assert {t["tag"] for t in dry.tags} == expected and dry.counts["tags_selected"] == 3
    listed = {t["tag"]: t for t in dry.tags}
    assert listed["v1"]["digest"] == images["v1"][0] and "not among the 2 most recently pushed" in listed["v1"]["because"]
    assert tags(tenant) == set(images) and not ObjectDeletion.objects.exists()
    assert JobRun.objects.get(pk=dry.job_id).dry_run is True

    pushed = dict(Tag.objects.filter(tenant=tenant).values_list("name", "last_pushed_at"))
    real = retention_apply_to_completion(tenant=tenant)
    assert real.counts["tags_deleted"] == 3 and real.counts["objects_deleted"] == 3
    assert tags(tenant) == set(images) - expected
    for name in expected:
        assert tag_object(blob_store, tenant, name) is None
    # What Storj billed for each tag object, in the deletion ledger (billing/storj_cost.py prices it).
    assert set(DeletedObject.objects.values_list("kind", "key", "size", "stored_since")) == {
        ("tag", keys.tag_key(tenant.pk, "app", n), keys.tag_object_size(n, images[n][0]), pushed[n]) for n in expected
    }
    for name in set(images) - expected:
        assert tag_object(blob_store, tenant, name) == {"tag": name, "digest": images[name][0]}
    job = JobRun.objects.get(pk=real.job_id)
    assert job.kind == "retention" and job.state == "succeeded" and job.counts["tags_deleted"] == 3

    # The untagged images are GC's: gone after the grace period, the tagged ones still pull.
    settings.GATEWAY_GC_GRACE_SECONDS = 0
    gc = gc_run_to_completion(tenant=tenant)
    assert gc.counts["manifests_deleted"] == 3
    assert not Manifest.objects.filter(digest__in=[images[n][0] for n in expected]).exists()
    for name in set(images) - expected:
        pulls_back(reg, "app", name, images[name][1], [f"layer of {name}".encode(), config(name)])
    # Idempotent.
    assert retention_apply_to_completion(tenant=tenant).counts.get("tags_deleted", 0) == 0


@pytest.mark.django_db
def test_delete_regex_selects_matching_tags_older_than_d_days(reg, tenant):
    for name, days in (("pr-1", 30), ("pr-2", 2), ("main", 30), ("pr-x-old", 40)):
        push_image(reg, "app", name, [name.encode()], config(name))
        age(tenant, name, days)
    retention_policy_set(tenant=tenant, delete_regex=r"pr-\d+", older_than_days=7)
    report = retention_apply_to_completion(tenant=tenant)
    assert report.counts["tags_deleted"] == 1 and tags(tenant) == {"pr-2", "main", "pr-x-old"}  # full match only


@pytest.mark.django_db
def test_keep_regex_deletes_every_tag_not_matching(reg, tenant):
    for name in ("v1.0", "v1.1", "latest", "feature-x"):
        push_image(reg, "app", name, [name.encode()], config(name))
    retention_policy_set(tenant=tenant, keep_regex=r"v\d+\.\d+")
    retention_apply_to_completion(tenant=tenant)
    assert tags(tenant) == {"v1.0", "v1.1"}


@pytest.mark.django_db
def test_a_repository_policy_overrides_the_tenants_and_a_disabled_one_exempts(reg, tenant):
    for repo in ("a", "b", "c"):
        for i in range(3):
            push_image(reg, repo, f"t{i}", [f"{repo}{i}".encode()], config(f"{repo}{i}"))
            age(tenant, f"t{i}", 10 - i, repo=repo)
    retention_policy_set(tenant=tenant, keep_last=1)
    retention_policy_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="b"), keep_last=2)
    retention_policy_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="c"), enabled=False, keep_last=0)
    report = retention_apply_to_completion(tenant=tenant)
    assert report.counts["tags_deleted"] == 3
    assert (tags(tenant, "a"), tags(tenant, "b"), tags(tenant, "c")) == ({"t2"}, {"t1", "t2"}, {"t0", "t1", "t2"})


@pytest.mark.django_db
def test_retention_keeps_a_tag_pushed_again_after_it_was_selected(reg, tenant, images):
    repo = selectors.repository_get(tenant=tenant, name="app")
    v1 = Tag.objects.get(repository=repo, name="v1")
    stale = _Doomed(tag_id=v1.pk, repository="app", name="v1", digest=images["v1"][0], pushed=v1.last_pushed_at, because=[])
    push_image(reg, "app", "v1", [b"layer of v1"], config("v1"))  # pushed again: last_pushed_at moves
    assert _tags_delete(tenant=tenant, doomed=[stale]) == (0, 1)
    assert "v1" in tags(tenant)


@pytest.mark.django_db
def test_policy_values_are_validated_with_clear_messages(tenant):
    with pytest.raises(RetentionPolicyInvalid, match=r"delete_regex '\(' is not a valid regular expression"):
        retention_policy_set(tenant=tenant, delete_regex="(")
    with pytest.raises(RetentionPolicyInvalid, match="keep_last must be a whole number from 0"):
        retention_policy_set(tenant=tenant, keep_last=-1)
    with pytest.raises(RetentionPolicyInvalid, match="older_than_days must be a whole number"):
        retention_policy_set(tenant=tenant, older_than_days="7")  # type: ignore[arg-type]
    with pytest.raises(RetentionPolicyInvalid, match="at most 255"):
        retention_policy_set(tenant=tenant, keep_regex="a" * 300)
    assert not RetentionPolicy.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_retention_commands_set_show_dry_run_and_apply(reg, tenant):
    for i in range(3):
        push_image(reg, "app", f"t{i}", [f"l{i}".encode()], config(f"c{i}"))
        age(tenant, f"t{i}", 10 - i)
    r = command("retention", "--tenant", "acme", "--set", "--keep-last", "1", "--keep-regex", "(")
    assert r.returncode != 0 and "not a valid regular expression" in r.stderr
    r = command("retention", "--tenant", "acme", "--set", "--keep-last", "1", "--untagged-days", "3")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["policy"]["keep_last"] == 1
    assert json.loads(command("retention", "--tenant", "acme", "--show").stdout)["policy"]["untagged_days"] == 3
    r = command("retention", "--tenant", "acme", "--dry-run")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {t["tag"] for t in doc["tenants"][0]["tags"]} == {"t0", "t1"} and tags(tenant) == {"t0", "t1", "t2"}
    r = command("retention", "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenants"][0]["counts"]["tags_deleted"] == 2 and tags(tenant) == {"t2"}
    r = command("retention", "--tenant", "acme", "--clear")
    assert json.loads(r.stdout) == {"cleared": True} and not RetentionPolicy.objects.exists()
    r = command("retention", "--tenant", "acme", "--repository", "nope", "--show")
    assert r.returncode != 0 and "has no repository 'nope'" in r.stderr


# -- immutable tags ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_push_that_would_move_an_immutable_tag_is_denied(reg, tenant, blob_store):
    d1, p1 = push_image(reg, "app", "v1", [b"first"], config("first"))
    tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="v1")
    c = reg.push_blob("app", config("second"))
    layer = reg.push_blob("app", b"second")
    from tests.registry.test_gc import image_doc

    p2 = image_doc((c, len(config("second"))), [(layer, len(b"second"))])
    r = reg.push_manifest("app", "v1", p2, OCI)
    assert r.status_code == 403
    err = r.json()["errors"][0]
    assert err["code"] == "DENIED" and "tag 'v1' is immutable" in err["message"] and d1 in err["message"]
    # Nothing moved: the tag, the bucket's tag object, and no new manifest row.
    assert Tag.objects.get(name="v1").manifest.digest == d1
    assert tag_object(blob_store, tenant, "v1") == {"tag": "v1", "digest": d1}
    assert not Manifest.objects.exclude(digest=d1).exists()
    # Re-pushing the same manifest is not a move; a new tag is fine.
    assert reg.push_manifest("app", "v1", p1, OCI).status_code == 201
    assert reg.push_manifest("app", "v2", p2, OCI).status_code == 201
    pulls_back(reg, "app", "v1", p1, [b"first", config("first")])
    # Mutable again: the move goes through.
    tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="v1", immutable=False)
    assert reg.push_manifest("app", "v1", p2, OCI).status_code == 201


@pytest.mark.django_db
def test_an_immutable_tag_and_its_manifest_cannot_be_deleted(reg, tenant):
    d1, _ = push_image(reg, "app", "v1", [b"pinned"], config("pinned"))
    tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="v1")
    for ref in ("v1", d1):
        r = reg.delete(f"/v2/acme/app/manifests/{ref}")
        assert r.status_code == 403 and "immutable" in r.json()["errors"][0]["message"]
    assert Tag.objects.filter(name="v1", manifest__digest=d1).exists()


@pytest.mark.django_db
def test_retention_never_deletes_an_immutable_tag(reg, tenant):
    push_image(reg, "app", "pinned", [b"p"], config("p"))
    age(tenant, "pinned", 100)
    tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="pinned")
    retention_policy_set(tenant=tenant, keep_last=0)
    report = retention_apply_to_completion(tenant=tenant)
    assert report.counts.get("tags_deleted", 0) == 0 and tags(tenant) == {"pinned"}


@pytest.mark.django_db
def test_marking_an_unknown_tag_is_a_clear_error(reg, tenant):
    push_image(reg, "app", "v1", [b"x"], config("x"))
    with pytest.raises(NotFound, match="repository 'app' has no tag 'v9'"):
        tag_immutable_set(tenant=tenant, repository=selectors.repository_get(tenant=tenant, name="app"), name="v9")


@pytest.mark.django_db(transaction=True)
def test_tag_immutable_command(reg, tenant):
    push_image(reg, "app", "v1", [b"x"], config("x"))
    r = command("tag_immutable", "acme", "app", "v1")
    assert r.returncode == 0 and json.loads(r.stdout) == {"repository": "app", "tag": "v1", "immutable": True}
    assert Tag.objects.get(name="v1").immutable
    r = command("tag_immutable", "acme", "app", "v9")
    assert r.returncode != 0 and "has no tag 'v9'" in r.stderr
    assert command("tag_immutable", "acme", "app", "v1", "--off").returncode == 0 and not Tag.objects.get(name="v1").immutable
