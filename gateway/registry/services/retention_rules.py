"""Retention's verdict on each tag: the one evaluation that both the real run and the dry-run plan use.

`repository_verdicts` ranks a repository's tags by last push and says of each whether its
policy deletes it and why, or what protects it: the tag's immutable flag, an immutable-tag rule,
`keep_last`, `keep_regex`, not matching `delete_regex`, or being too new. `retention_apply`
deletes the tags it selects; `retention_plan` (the API's dry-run, optionally with a policy not
saved yet) lists both sides, so the two cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import Tenant
from gateway.registry.models import ImmutableTagRule, Repository, RetentionPolicy, Tag
from gateway.registry.services.immutability import ImmutableRules, immutable_rules_load

LISTED_MAX = 1000
PLAN_REPOSITORIES_MAX = 500


@dataclass(frozen=True)
class Rules:
    keep_last: int | None
    older_than: datetime | None
    delete_re: re.Pattern[str] | None
    keep_re: re.Pattern[str] | None

    @classmethod
    def of(cls, policy: RetentionPolicy, now: datetime) -> Rules | None:
        if not policy.enabled:
            return None
        if policy.keep_last is None and policy.older_than_days is None and not policy.delete_regex and not policy.keep_regex:
            return None  # a policy with no tag rule deletes no tag (it may still set untagged_days for GC)
        return cls(
            keep_last=policy.keep_last,
            older_than=None if policy.older_than_days is None else now - timedelta(days=policy.older_than_days),
            delete_re=re.compile(policy.delete_regex) if policy.delete_regex else None,
            keep_re=re.compile(policy.keep_regex) if policy.keep_regex else None,
        )

    def kept_by(self, *, name: str, pushed: datetime, rank: int) -> tuple[str, str] | None:
        """The rule that keeps the tag (its code and a message), or None when the policy deletes it."""
        if self.keep_last is not None and rank < self.keep_last:
            return "keep_last", f"among the {self.keep_last} most recently pushed"
        if self.keep_re is not None and self.keep_re.fullmatch(name):
            return "keep_regex", f"matches keep_regex {self.keep_re.pattern!r}"
        if self.delete_re is not None and not self.delete_re.fullmatch(name):
            return "delete_regex", f"does not match delete_regex {self.delete_re.pattern!r}"
        if self.older_than is not None and pushed >= self.older_than:
            return "too_new", "pushed after " + self.older_than.isoformat(timespec="seconds")
        return None

    def reasons(self) -> list[str]:
        """Why a tag that no rule keeps goes."""
        why = []
        if self.keep_last is not None:
            why.append(f"not among the {self.keep_last} most recently pushed")
        if self.keep_re is not None:
            why.append(f"does not match keep_regex {self.keep_re.pattern!r}")
        if self.delete_re is not None:
            why.append(f"matches delete_regex {self.delete_re.pattern!r}")
        if self.older_than is not None:
            why.append("pushed before " + self.older_than.isoformat(timespec="seconds"))
        return why


@dataclass(frozen=True)
class TagVerdict:
    """One tag: deleted (`because` says why) or protected (`reason` is what protects it)."""

    tag_id: int
    repository: str
    name: str
    digest: str
    pushed: datetime
    because: list[str]
    delete: bool = True
    reason: str = ""


def _evaluate(*, repository: Repository, rules: Rules, immutable: ImmutableRules) -> list[TagVerdict]:
    tags = (
        Tag.objects.filter(tenant_id=repository.tenant_id, repository=repository)
        .order_by("-last_pushed_at", "name")
        .values_list("pk", "name", "last_pushed_at", "immutable", "manifest__digest")
    )
    out = []
    for rank, (pk, name, pushed, flag, digest) in enumerate(tags):
        verdict = TagVerdict(tag_id=pk, repository=repository.name, name=name, digest=digest, pushed=pushed, because=[])
        # A protected tag is never deleted, and still counts towards keep_last (it is one of the recent tags).
        protected = immutable.reason(repository=repository.name, tag=name, immutable=flag)
        kept = (
            ("immutable_tag" if flag else "immutable_rule", protected)
            if protected is not None
            else rules.kept_by(name=name, pushed=pushed, rank=rank)
        )
        if kept is None:
            out.append(replace(verdict, because=rules.reasons()))
        else:
            out.append(replace(verdict, delete=False, reason=kept[0], because=[kept[1]]))
    return out


@dataclass(frozen=True)
class Policies:
    """A tenant's policies, loaded once: the tenant-wide one and those of single repositories."""

    tenant_wide: RetentionPolicy | None
    per_repository: dict[int, RetentionPolicy]

    @classmethod
    def load(cls, tenant: Tenant, draft: RetentionPolicy | None = None) -> Policies:
        """The saved policies, with `draft` (not saved) in place of the saved one of its scope."""
        tenant_wide, per_repository = None, {}
        for p in RetentionPolicy.objects.filter(tenant=tenant):
            if p.repository_id is None:
                tenant_wide = p
            else:
                per_repository[p.repository_id] = p
        if draft is not None and draft.repository_id is None:
            tenant_wide = draft
        elif draft is not None and draft.repository_id is not None:
            per_repository[draft.repository_id] = draft
        return cls(tenant_wide=tenant_wide, per_repository=per_repository)

    def repositories_next(self, *, tenant: Tenant, after_repository_id: int, limit: int) -> tuple[list[Repository], bool]:
        """Up to `limit` repositories after the cursor, in pk order, that some policy may apply to (not ones being deleted: their job owns them); and whether more remain."""
        repos = Repository.objects.filter(tenant=tenant, pk__gt=after_repository_id, deleted_name="").order_by("pk")
        if self.tenant_wide is None:
            repos = repos.filter(pk__in=list(self.per_repository))
        batch = list(repos[: limit + 1])
        return batch[:limit], len(batch) > limit


def repository_verdicts(
    *, repository: Repository, policies: Policies, now: datetime, immutable: ImmutableRules
) -> list[TagVerdict] | None:
    """Every tag of the repository judged by its policy (its own, else the tenant's); None when no policy selects tags there."""
    policy = policies.per_repository.get(repository.pk, policies.tenant_wide)
    rules = Rules.of(policy, now) if policy is not None else None
    if rules is None:
        return None
    return _evaluate(repository=repository, rules=rules, immutable=immutable)


@dataclass
class RetentionPlan:
    """What retention would delete and what it keeps (each list at most LISTED_MAX long; the counts are complete)."""

    repositories: int = 0
    complete: bool = True
    delete: list[TagVerdict] = field(default_factory=list)
    protected: list[TagVerdict] = field(default_factory=list)
    delete_count: int = 0
    protected_count: int = 0


def retention_plan(
    *,
    tenant: Tenant,
    draft: RetentionPolicy | None = None,
    rule_draft: ImmutableTagRule | None = None,
    now: datetime | None = None,
    max_repositories: int = PLAN_REPOSITORIES_MAX,
) -> RetentionPlan:
    """The dry run of the tenant's retention (with `draft` in place of the saved policy of its scope, and `rule_draft`
    among the immutable-tag rules, in place of the saved one it edits), changing nothing.

    Bounded: up to `max_repositories` repositories (`complete` false when there are more).
    """
    now = now or timezone.now()
    policies = Policies.load(tenant, draft)
    immutable = immutable_rules_load(tenant=tenant)
    if rule_draft is not None:
        immutable = immutable.with_draft(rule_draft)
    batch, more = policies.repositories_next(tenant=tenant, after_repository_id=0, limit=max_repositories)
    plan = RetentionPlan(complete=not more)
    for repository in batch:
        verdicts = repository_verdicts(repository=repository, policies=policies, now=now, immutable=immutable)
        if verdicts is None:
            continue
        plan.repositories += 1
        for verdict in verdicts:
            listed = plan.delete if verdict.delete else plan.protected
            if len(listed) < LISTED_MAX:
                listed.append(verdict)
        plan.delete_count += sum(1 for v in verdicts if v.delete)
        plan.protected_count += sum(1 for v in verdicts if not v.delete)
    return plan
