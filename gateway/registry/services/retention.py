"""Retention: which tags a repository's (or its tenant's) policy deletes; immutable tags.

A policy (models.RetentionPolicy) selects tags to delete; deleting a tag only untags its
manifest, which GC reclaims after the grace period, together with the blobs nothing else
references. Immutable tags are never deleted, and a push never moves them (manifest_put).

`retention_apply` evaluates the policies repository by repository and deletes the selected tags
in batches: lock FOR UPDATE SKIP LOCKED, check again (not immutable now, not pushed again since
the evaluation), delete the rows and record their bucket objects in one transaction, then drain
the objects. A dry run evaluates the same and lists what would go.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.errors import NotFound, ValidationError
from gateway.registry import locks
from gateway.registry.models import JobRun, ObjectDeletion, Repository, RetentionPolicy, Tag
from gateway.registry.services import events
from gateway.registry.services.deletions import object_deletions_drain, object_deletions_record
from gateway.registry.services.gc_sweep import GcSettings
from gateway.registry.services.jobruns import JobReport, jobrun_claim, jobrun_record, jobrun_to_completion
from gateway.storage import keys

log = logging.getLogger(__name__)

KIND_RETENTION = "retention"
LISTED_MAX = 1000
MAX_DAYS = 36_500
MAX_KEEP_LAST = 1_000_000
_REGEX_MAX = 255


class RetentionPolicyInvalid(ValidationError):
    """A retention policy value that cannot be stored (the message says which and why)."""


# -- policies -------------------------------------------------------------------------------------


def _check_count(name: str, value: int | None, *, minimum: int, maximum: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise RetentionPolicyInvalid(f"{name} must be a whole number from {minimum} to {maximum}, got {value!r}")


def _check_regex(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise RetentionPolicyInvalid(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > _REGEX_MAX:
        raise RetentionPolicyInvalid(f"{name} is {len(value)} characters; at most {_REGEX_MAX} are allowed")
    if "\x00" in value:
        raise RetentionPolicyInvalid(f"{name} must not contain NUL characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise RetentionPolicyInvalid(f"{name} {value!r} is not a valid regular expression: {exc}") from None


def retention_policy_set(
    *,
    tenant: Tenant,
    repository: Repository | None = None,
    enabled: bool = True,
    keep_last: int | None = None,
    older_than_days: int | None = None,
    delete_regex: str = "",
    keep_regex: str = "",
    untagged_days: int | None = None,
) -> RetentionPolicy:
    """Create or replace the policy of `repository` (None: the tenant-wide one); every value validated, regexes compiled."""
    if repository is not None and repository.tenant_id != tenant.pk:
        raise RetentionPolicyInvalid(f"repository {repository.name!r} does not belong to tenant {tenant.slug!r}")
    if not isinstance(enabled, bool):
        raise RetentionPolicyInvalid(f"enabled must be true or false, got {enabled!r}")
    _check_count("keep_last", keep_last, minimum=0, maximum=MAX_KEEP_LAST)
    _check_count("older_than_days", older_than_days, minimum=0, maximum=MAX_DAYS)
    _check_count("untagged_days", untagged_days, minimum=0, maximum=MAX_DAYS)
    _check_regex("delete_regex", delete_regex)
    _check_regex("keep_regex", keep_regex)
    values = {
        "enabled": enabled,
        "keep_last": keep_last,
        "older_than_days": older_than_days,
        "delete_regex": delete_regex,
        "keep_regex": keep_regex,
        "untagged_days": untagged_days,
    }
    try:
        with transaction.atomic():
            policy, _ = RetentionPolicy.objects.update_or_create(tenant=tenant, repository=repository, defaults=values)
    except IntegrityError:
        # A concurrent set of the same policy won the insert; ours replaces it.
        policy = RetentionPolicy.objects.get(tenant=tenant, repository=repository)
        for k, v in values.items():
            setattr(policy, k, v)
        policy.save()
    return policy


def retention_policy_clear(*, tenant: Tenant, repository: Repository | None = None) -> bool:
    """Remove the policy of `repository` (None: the tenant-wide one); False when there was none."""
    deleted, _ = RetentionPolicy.objects.filter(tenant=tenant, repository=repository).delete()
    return bool(deleted)


def retention_policy_describe(policy: RetentionPolicy) -> dict[str, Any]:
    """The policy as JSON-able data."""
    return {
        "repository": policy.repository.name if policy.repository is not None else None,
        "enabled": policy.enabled,
        "keep_last": policy.keep_last,
        "older_than_days": policy.older_than_days,
        "delete_regex": policy.delete_regex,
        "keep_regex": policy.keep_regex,
        "untagged_days": policy.untagged_days,
    }


def tag_immutable_set(*, tenant: Tenant, repository: Repository, name: str, immutable: bool = True) -> Tag:
    """Mark a tag immutable (never moved by a push, never deleted by retention) or mutable again; raises if there is no such tag."""
    with transaction.atomic():
        tag = locks.tag_for_update(tenant=tenant, repository=repository, name=name)
        if tag is None:
            raise NotFound(f"repository {repository.name!r} has no tag {name!r}")
        if tag.immutable != immutable:
            tag.immutable = immutable
            tag.save(update_fields=["immutable", "updated_at"])
    return tag


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    keep_last: int | None
    older_than: datetime | None
    delete_re: re.Pattern[str] | None
    keep_re: re.Pattern[str] | None

    @classmethod
    def of(cls, policy: RetentionPolicy, now: datetime) -> _Rules | None:
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

    def reasons(self, *, name: str, pushed: datetime, rank: int) -> list[str] | None:
        """Why the tag goes, or None when a rule keeps it."""
        if self.keep_last is not None and rank < self.keep_last:
            return None
        if self.keep_re is not None and self.keep_re.fullmatch(name):
            return None
        if self.delete_re is not None and not self.delete_re.fullmatch(name):
            return None
        if self.older_than is not None and pushed >= self.older_than:
            return None
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
class _Doomed:
    tag_id: int
    repository: str
    name: str
    digest: str
    pushed: datetime
    because: list[str]


def _policies(tenant: Tenant) -> tuple[RetentionPolicy | None, dict[int, RetentionPolicy]]:
    tenant_wide = None
    per_repo: dict[int, RetentionPolicy] = {}
    for p in RetentionPolicy.objects.filter(tenant=tenant):
        if p.repository_id is None:
            tenant_wide = p
        else:
            per_repo[p.repository_id] = p
    return tenant_wide, per_repo


def _evaluate(*, repository: Repository, rules: _Rules) -> list[_Doomed]:
    tags = (
        Tag.objects.filter(tenant_id=repository.tenant_id, repository=repository)
        .order_by("-last_pushed_at", "name")
        .values_list("pk", "name", "last_pushed_at", "immutable", "manifest__digest")
    )
    out = []
    for rank, (pk, name, pushed, immutable, digest) in enumerate(tags):
        if immutable:
            continue  # never deleted; still counts towards keep_last (it is one of the recent tags)
        because = rules.reasons(name=name, pushed=pushed, rank=rank)
        if because is not None:
            out.append(_Doomed(tag_id=pk, repository=repository.name, name=name, digest=digest, pushed=pushed, because=because))
    return out


@dataclass(kw_only=True)
class RetentionReport(JobReport):
    """What one `retention_apply` invocation deleted (or, dry run, would delete)."""

    tenant: str
    dry_run: bool
    next_after_repository_id: int | None = None
    tags: list[dict[str, Any]] = field(default_factory=list)

    def continuation(self) -> dict[str, Any] | None:
        if self.done or self.next_after_repository_id is None:
            return None
        return {"job_id": self.job_id, "after_repository_id": self.next_after_repository_id}

    def merged(self, later: RetentionReport) -> RetentionReport:
        super().merged(later)
        self.tags += later.tags[: max(LISTED_MAX - len(self.tags), 0)]
        self.next_after_repository_id = later.next_after_repository_id
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tags_delete(*, tenant: Tenant, doomed: list[_Doomed]) -> tuple[int, int]:
    """Delete these tags if nothing changed since the evaluation: (deleted, kept)."""
    expected = {d.tag_id: d for d in doomed}
    with transaction.atomic():
        rows = locks.tags_for_delete(tenant=tenant, ids=sorted(expected))
        gone = [t for t in rows if not t.immutable and t.last_pushed_at == expected[t.pk].pushed]
        if gone:
            Tag.objects.filter(pk__in=[t.pk for t in gone]).delete()
            object_deletions_record(
                tenant=tenant,
                items=[
                    (ObjectDeletion.Kind.TAG, keys.tag_key(tenant.pk, t.repository.name, t.name), t.repository.name, t.name)
                    for t in gone
                ],
            )
    for t in gone:
        events.record(
            tenant=tenant,
            repository=t.repository.name,
            digest=t.manifest.digest,
            size=0,
            kind="tag",
            direction="delete",
            reference=t.name,
        )
    return len(gone), len(doomed) - len(gone)


def _repositories_next(
    *, tenant: Tenant, after_repository_id: int, limit: int, only: list[int] | None
) -> tuple[list[Repository], bool]:
    """Up to `limit` of the tenant's repositories after the cursor, in pk order (only ids in `only`, if given), and whether more remain."""
    repos = Repository.objects.filter(tenant=tenant, pk__gt=after_repository_id, deleted_name="").order_by("pk")
    if only is not None:
        repos = repos.filter(pk__in=only)
    batch = list(repos[: limit + 1])
    return batch[:limit], len(batch) > limit


def _doomed_list(*, report: RetentionReport, doomed: list[_Doomed]) -> None:
    """Dry run: add the selected tags to the report's listing, which holds at most LISTED_MAX."""
    room = LISTED_MAX - len(report.tags)
    report.tags += [
        {
            "repository": d.repository,
            "tag": d.name,
            "digest": d.digest,
            "last_pushed_at": d.pushed.isoformat(),
            "because": d.because,
        }
        for d in doomed[: max(room, 0)]
    ]


def _doomed_delete(*, tenant: Tenant, doomed: list[_Doomed], job: JobRun, report: RetentionReport, cfg: GcSettings) -> None:
    """Delete one repository's selected tags batch by batch, draining their objects after each batch."""
    for i in range(0, len(doomed), cfg.batch_size):
        deleted, kept = _tags_delete(tenant=tenant, doomed=doomed[i : i + cfg.batch_size])
        report.add(tags_deleted=deleted, tags_kept=kept)
        jobrun_record(run=job, counts={"tags_deleted": deleted, "tags_kept": kept})
        d_objects, k_objects, _ = object_deletions_drain(tenant=tenant, batch_size=cfg.batch_size, max_batches=cfg.max_batches)
        report.add(objects_deleted=d_objects, objects_kept=k_objects)


def retention_apply(
    *,
    tenant: Tenant,
    dry_run: bool = False,
    job_id: int | None = None,
    after_repository_id: int = 0,
    max_repositories: int = 200,
    now: datetime | None = None,
    task_id: str = "",
) -> RetentionReport | None:
    """Apply the tenant's retention policies to up to `max_repositories` repositories after the cursor; None if another worker holds it.

    Idempotent: a tag is deleted only if it is still mutable and was not pushed again since it
    was selected; its bucket object goes after the row, through the checked drain.
    """
    if max_repositories < 1:
        raise ValueError(f"max_repositories must be at least 1, got {max_repositories}")
    cfg = GcSettings.current()
    now = now or timezone.now()
    with jobrun_claim(kind=KIND_RETENTION, tenant=tenant, dry_run=dry_run, job_id=job_id, task_id=task_id) as job:
        if job is None:
            return None
        report = RetentionReport(tenant=tenant.slug, dry_run=dry_run, job_id=job.pk)
        tenant_wide, per_repo = _policies(tenant)
        batch, more = _repositories_next(
            tenant=tenant,
            after_repository_id=after_repository_id,
            limit=max_repositories,
            only=list(per_repo) if tenant_wide is None else None,
        )
        for repo in batch:
            policy = per_repo.get(repo.pk, tenant_wide)
            rules = _Rules.of(policy, now) if policy is not None else None
            if rules is None:
                continue
            doomed = _evaluate(repository=repo, rules=rules)
            report.add(repositories=1, tags_selected=len(doomed))
            if dry_run:
                _doomed_list(report=report, doomed=doomed)
            else:
                _doomed_delete(tenant=tenant, doomed=doomed, job=job, report=report, cfg=cfg)
        report.next_after_repository_id = batch[-1].pk if (more and batch) else None
        report.done = not more
        if dry_run:
            jobrun_record(run=job, counts=report.counts)
        else:
            jobrun_record(run=job, counts={k: v for k, v in report.counts.items() if k not in ("tags_deleted", "tags_kept")})
        report.close(job)
        return report


def retention_apply_to_completion(*, tenant: Tenant, dry_run: bool = False) -> RetentionReport | None:
    """Apply the tenant's retention to every repository, invocation after invocation (the task chain's code); None if held."""
    return jobrun_to_completion(
        lambda job_id=None, after_repository_id=0: retention_apply(
            tenant=tenant, dry_run=dry_run, job_id=job_id, after_repository_id=after_repository_id
        ),
        RetentionReport.merged,
    )
