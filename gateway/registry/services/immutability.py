"""Immutable-tag rules (models.ImmutableTagRule): tags immutable by name, and the one check every path that moves or deletes a tag makes.

A tag is protected when its own `immutable` flag is set or when a rule of its tenant matches
it (fnmatch on the repository name and on the tag name, both full matches, case-sensitive).
A push may not move a protected tag, DELETE (by tag, or by the digest it names) refuses, and
retention keeps it. Rules are few per tenant, so a caller loads them once (`immutable_rules_load`,
one query) and asks the loaded set about every tag it looks at.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Tenant
from gateway.core.errors import Conflict, ValidationError
from gateway.registry.models import ImmutableTagRule, Tag

REPOSITORY_PATTERN_MAX = 255
TAG_PATTERN_MAX = 128
RULES_MAX = 100  # per tenant: they are checked on every tag move and delete


class ImmutableRuleInvalid(ValidationError):
    """A rule value that cannot be stored (the message says which and why)."""


def rule_describe(rule: ImmutableTagRule) -> str:
    """How messages name a rule: its id and both patterns."""
    name = "the unsaved immutable-tag rule" if rule.pk is None else f"immutable-tag rule {rule.pk}"
    return f"{name} (repositories {rule.repository_pattern or '*'!r}, tags {rule.tag_pattern!r})"


@dataclass(frozen=True)
class ImmutableRules:
    """A tenant's rules, loaded once."""

    rules: tuple[ImmutableTagRule, ...]

    def rule_for(self, *, repository: str, tag: str) -> ImmutableTagRule | None:
        """The first rule (by id) that makes `repository:tag` immutable, or None."""
        for rule in self.rules:
            if (not rule.repository_pattern or fnmatch.fnmatchcase(repository, rule.repository_pattern)) and (
                fnmatch.fnmatchcase(tag, rule.tag_pattern)
            ):
                return rule
        return None

    def reason(self, *, repository: str, tag: str, immutable: bool) -> str | None:
        """Why this tag is protected ("immutable", or "immutable by <rule>"), or None when it is not."""
        if immutable:
            return "immutable"
        rule = self.rule_for(repository=repository, tag=tag)
        return None if rule is None else f"immutable by {rule_describe(rule)}"

    def with_draft(self, draft: ImmutableTagRule) -> ImmutableRules:
        """These rules and `draft` (not saved; an edit of a saved rule replaces that one): what a preview evaluates."""
        kept = tuple(r for r in self.rules if draft.pk is None or r.pk != draft.pk)
        return ImmutableRules(rules=(*kept, draft))


def immutable_rules_load(*, tenant: Tenant | int) -> ImmutableRules:
    """Every rule of the tenant, in id order (one query)."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    return ImmutableRules(rules=tuple(ImmutableTagRule.objects.filter(tenant_id=tenant_id).order_by("pk")))


def _check_pattern(name: str, value: object, *, maximum: int, required: bool) -> str:
    if not isinstance(value, str):
        raise ImmutableRuleInvalid(f"{name} must be a string", extra={"errors": {name: "Must be a string."}})
    problem = None
    if required and not value:
        problem = "must not be empty"
    elif len(value) > maximum:
        problem = f"is {len(value)} characters; at most {maximum} are allowed"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = "must not contain control characters"
    if problem is not None:
        raise ImmutableRuleInvalid(f"{name} {problem}", extra={"errors": {name: f"{name} {problem}."}})
    return value


def _rule_validate(*, repository_pattern: object, tag_pattern: object) -> dict[str, str]:
    return {
        "repository_pattern": _check_pattern(
            "repository_pattern", repository_pattern, maximum=REPOSITORY_PATTERN_MAX, required=False
        ),
        "tag_pattern": _check_pattern("tag_pattern", tag_pattern, maximum=TAG_PATTERN_MAX, required=True),
    }


def immutable_rule_draft(
    *, tenant: Tenant, repository_pattern: object, tag_pattern: object, rule: ImmutableTagRule | None = None
) -> ImmutableTagRule:
    """An unsaved rule with these (validated) patterns, standing in for `rule` when it edits one: what a preview evaluates."""
    values = _rule_validate(repository_pattern=repository_pattern, tag_pattern=tag_pattern)
    return ImmutableTagRule(pk=None if rule is None else rule.pk, tenant=tenant, **values)


@dataclass(frozen=True)
class RuleMatch:
    repository: str
    tag: str
    digest: str
    pushed: datetime


def immutable_rule_matches(*, tenant: Tenant, rule: ImmutableTagRule, limit: int = 1000) -> tuple[list[RuleMatch], int]:
    """The tenant's tags `rule` (saved or not) matches, newest push first: at most `limit` listed, and how many in all."""
    only = ImmutableRules(rules=(rule,))
    tags = (
        Tag.objects.filter(tenant=tenant, repository__deleted_name="")
        .order_by("-last_pushed_at", "pk")
        .values_list("repository__name", "name", "manifest__digest", "last_pushed_at")
    )
    listed: list[RuleMatch] = []
    count = 0
    for repository, name, digest, pushed in tags.iterator(chunk_size=2000):
        if only.rule_for(repository=repository, tag=name) is not None:
            count += 1
            if len(listed) < limit:
                listed.append(RuleMatch(repository=repository, tag=name, digest=digest, pushed=pushed))
    return listed, count


def _duplicate(values: dict[str, str]) -> Conflict:
    return Conflict(
        f"a rule with repository pattern {values['repository_pattern']!r} and tag pattern {values['tag_pattern']!r} exists already"
    )


def immutable_rule_create(*, tenant: Tenant, repository_pattern: str, tag_pattern: str, actor: str) -> ImmutableTagRule:
    """A new rule (409 if one with the same patterns exists, or the tenant has RULES_MAX); audited."""
    values = _rule_validate(repository_pattern=repository_pattern, tag_pattern=tag_pattern)
    if ImmutableTagRule.objects.filter(tenant=tenant).count() >= RULES_MAX:
        raise Conflict(f"a tenant has at most {RULES_MAX} immutable-tag rules; delete one first")
    try:
        with transaction.atomic():
            rule = ImmutableTagRule.objects.create(tenant=tenant, **values)
            audit_record(action="immutable_rule.create", actor=actor, tenant=tenant, target=str(rule.pk), detail=values)
    except IntegrityError:
        raise _duplicate(values) from None
    return rule


def immutable_rule_update(
    *, tenant: Tenant, rule: ImmutableTagRule, actor: str, repository_pattern: str | None = None, tag_pattern: str | None = None
) -> ImmutableTagRule:
    """Change a rule's patterns (the caller holds its row lock); audited when something changed."""
    values = _rule_validate(
        repository_pattern=rule.repository_pattern if repository_pattern is None else repository_pattern,
        tag_pattern=rule.tag_pattern if tag_pattern is None else tag_pattern,
    )
    if values == {"repository_pattern": rule.repository_pattern, "tag_pattern": rule.tag_pattern}:
        return rule
    try:
        with transaction.atomic():
            ImmutableTagRule.objects.filter(tenant=tenant, pk=rule.pk).update(**values, updated_at=timezone.now())
            audit_record(action="immutable_rule.update", actor=actor, tenant=tenant, target=str(rule.pk), detail=values)
    except IntegrityError:
        raise _duplicate(values) from None
    rule.refresh_from_db()
    return rule


def immutable_rule_delete(*, tenant: Tenant, rule: ImmutableTagRule, actor: str) -> None:
    """Remove a rule (the caller holds its row lock): its tags become mutable again unless flagged; audited."""
    detail = {"repository_pattern": rule.repository_pattern, "tag_pattern": rule.tag_pattern}
    with transaction.atomic():
        ImmutableTagRule.objects.filter(tenant=tenant, pk=rule.pk).delete()
        audit_record(action="immutable_rule.delete", actor=actor, tenant=tenant, target=str(rule.pk), detail=detail)
