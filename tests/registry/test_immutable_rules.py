"""Immutable-tag rules enforced by the registry: pushes may not move a matching tag, DELETE and retention never delete it.

Real PostgreSQL and SeaweedFS; images pushed and deleted through /v2/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from gateway.core.errors import Conflict
from gateway.registry import selectors
from gateway.registry.models import ImmutableTagRule, Manifest, Tag
from gateway.registry.services.immutability import (
    ImmutableRuleInvalid,
    immutable_rule_create,
    immutable_rule_delete,
    immutable_rule_update,
    immutable_rules_load,
)
from gateway.registry.services.retention import _tags_delete, retention_apply_to_completion, retention_policy_set
from gateway.registry.services.retention_rules import Policies, repository_verdicts
from tests.registry.test_gc import OCI, config, image_doc, push_image


def _rule(tenant, tag_pattern: str, repository_pattern: str = "") -> ImmutableTagRule:
    return immutable_rule_create(tenant=tenant, repository_pattern=repository_pattern, tag_pattern=tag_pattern, actor="t")


def _other_image(reg, repo: str, name: str) -> bytes:
    c = reg.push_blob(repo, config(name))
    layer = reg.push_blob(repo, name.encode())
    return image_doc((c, len(config(name))), [(layer, len(name.encode()))])


@pytest.mark.django_db
def test_a_push_that_would_move_a_tag_a_rule_protects_is_denied_naming_the_rule(reg, tenant):
    d1, p1 = push_image(reg, "team/app", "v1", [b"first"], config("first"))
    push_image(reg, "team/app", "latest", [b"first"], config("first"))
    rule = _rule(tenant, "v*", repository_pattern="team/*")
    p2 = _other_image(reg, "team/app", "second")

    r = reg.push_manifest("team/app", "v1", p2, OCI)
    assert r.status_code == 403, r.content
    err = r.json()["errors"][0]
    assert err["code"] == "DENIED" and f"immutable-tag rule {rule.pk}" in err["message"] and "'v*'" in err["message"]
    assert Tag.objects.get(name="v1").manifest.digest == d1
    # Re-pushing its own manifest is no move; a tag no rule matches moves; a new matching tag may be created.
    assert reg.push_manifest("team/app", "v1", p1, OCI).status_code == 201
    assert reg.push_manifest("team/app", "latest", p2, OCI).status_code == 201
    assert reg.push_manifest("team/app", "v2", p2, OCI).status_code == 201
    # Another repository pattern: not protected there.
    push_image(reg, "lib/app", "v1", [b"first"], config("first"))
    assert reg.push_manifest("lib/app", "v1", _other_image(reg, "lib/app", "third"), OCI).status_code == 201
    # Without the rule, the move goes through.
    immutable_rule_delete(tenant=tenant, rule=rule, actor="t")
    assert reg.push_manifest("team/app", "v1", p2, OCI).status_code == 201


@pytest.mark.django_db
def test_delete_by_tag_or_digest_of_a_protected_tag_is_denied(reg, tenant):
    d1, _ = push_image(reg, "app", "release-1", [b"pinned"], config("pinned"))
    rule = _rule(tenant, "release-*")
    for ref in ("release-1", d1):
        r = reg.delete(f"/v2/acme/app/manifests/{ref}")
        assert r.status_code == 403, r.content
        assert f"immutable-tag rule {rule.pk}" in r.json()["errors"][0]["message"]
    assert Tag.objects.filter(name="release-1", manifest__digest=d1).exists()
    assert not AuditEvent.objects.filter(action__in=["tag.delete", "manifest.delete"]).exists()


@pytest.mark.django_db
def test_retention_keeps_tags_a_rule_protects_and_they_count_towards_keep_last(reg, tenant):
    for i, name in enumerate(["old-1", "release-1", "new-1"]):
        push_image(reg, "app", name, [name.encode()], config(name))
        Tag.objects.filter(name=name).update(last_pushed_at=timezone.now() - timedelta(days=10 - i))
    _rule(tenant, "release-*")
    retention_policy_set(tenant=tenant, keep_last=0)
    assert retention_apply_to_completion(tenant=tenant).counts["tags_deleted"] == 2
    assert set(Tag.objects.values_list("name", flat=True)) == {"release-1"}


@pytest.mark.django_db
def test_a_rule_added_after_the_evaluation_still_protects_at_deletion(reg, tenant):
    push_image(reg, "app", "v1", [b"x"], config("x"))
    retention_policy_set(tenant=tenant, keep_last=0)
    repository = selectors.repository_get(tenant=tenant, name="app")
    verdicts = repository_verdicts(
        repository=repository, policies=Policies.load(tenant), now=timezone.now(), immutable=immutable_rules_load(tenant=tenant)
    )
    assert [v.name for v in verdicts if v.delete] == ["v1"]
    _rule(tenant, "v1")
    assert _tags_delete(tenant=tenant, doomed=verdicts) == (0, 1)
    assert Tag.objects.filter(name="v1").exists()


@pytest.mark.django_db
def test_rules_are_loaded_once_per_push_whatever_their_number(reg, tenant):
    push_image(reg, "app", "latest", [b"a"], config("a"))
    moves = [_other_image(reg, "app", f"m{i}") for i in range(2)]

    def queries_for_move(payload: bytes) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert reg.push_manifest("app", "latest", payload, OCI).status_code == 201
        return len(ctx.captured_queries)

    _rule(tenant, "release-0")
    one = queries_for_move(moves[0])
    for i in range(1, 40):
        _rule(tenant, f"release-{i}")
    assert queries_for_move(moves[1]) == one


@pytest.mark.django_db
def test_rule_values_are_validated_unique_and_audited(tenant):
    rule = _rule(tenant, "v*")
    assert AuditEvent.objects.filter(action="immutable_rule.create", target=str(rule.pk)).exists()
    with pytest.raises(Conflict, match="exists already"):
        _rule(tenant, "v*")
    for bad in ("", "a" * 129, "v\n1"):
        with pytest.raises(ImmutableRuleInvalid) as info:
            _rule(tenant, bad)
        assert list(info.value.extra["errors"]) == ["tag_pattern"]
    with pytest.raises(ImmutableRuleInvalid):
        _rule(tenant, "v*", repository_pattern="x" * 256)
    other = _rule(tenant, "release-*")
    with pytest.raises(Conflict):
        immutable_rule_update(tenant=tenant, rule=other, actor="t", tag_pattern="v*")
    updated = immutable_rule_update(tenant=tenant, rule=other, actor="t", repository_pattern="team/*")
    assert (updated.repository_pattern, updated.tag_pattern) == ("team/*", "release-*")
    assert AuditEvent.objects.filter(action="immutable_rule.update").count() == 1
    assert immutable_rule_update(tenant=tenant, rule=updated, actor="t", tag_pattern="release-*") == updated
    assert AuditEvent.objects.filter(action="immutable_rule.update").count() == 1  # no change, no audit
    assert ImmutableTagRule.objects.count() == 2 and not Manifest.objects.exists()
