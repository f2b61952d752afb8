"""The dry-run plan (retention_rules.retention_plan): bounded, complete counts, and the same verdicts the real run acts on."""

from __future__ import annotations

import pytest

from gateway.registry.models import Tag
from gateway.registry.services import retention_rules
from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set
from gateway.registry.services.retention_rules import retention_plan
from tests.registry.test_gc import config, push_image


@pytest.mark.django_db
def test_the_plan_is_bounded_but_its_counts_are_complete(reg, tenant, monkeypatch):
    for repo in ("a", "b"):
        for i in range(3):
            push_image(reg, repo, f"t{i}", [f"{repo}{i}".encode()], config(f"{repo}{i}"))
    retention_policy_set(tenant=tenant, keep_last=1)
    monkeypatch.setattr(retention_rules, "LISTED_MAX", 2)
    plan = retention_plan(tenant=tenant)
    assert plan.complete and plan.repositories == 2
    assert (plan.delete_count, plan.protected_count) == (4, 2) and len(plan.delete) == 2 and len(plan.protected) == 2
    partial = retention_plan(tenant=tenant, max_repositories=1)
    assert not partial.complete and partial.repositories == 1 and partial.delete_count == 2
    assert Tag.objects.count() == 6  # nothing deleted


@pytest.mark.django_db
def test_the_plan_and_the_run_agree_tag_for_tag(reg, tenant):
    for name in ["keep-1", "x1", "x2", "x3", "keep-2"]:
        push_image(reg, "app", name, [name.encode()], config(name))
    retention_policy_set(tenant=tenant, keep_last=1, keep_regex="keep-.*")
    planned = {v.name for v in retention_plan(tenant=tenant).delete}
    before = set(Tag.objects.values_list("name", flat=True))
    retention_apply_to_completion(tenant=tenant)
    assert before - set(Tag.objects.values_list("name", flat=True)) == planned == {"x1", "x2", "x3"}
