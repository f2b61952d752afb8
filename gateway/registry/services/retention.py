"""Retention: which tags a repository's (or its tenant's) policy deletes; immutable tags.

A policy (models.RetentionPolicy) selects tags to delete; deleting a tag only untags its
manifest, which GC reclaims after the grace period, together with the blobs nothing else
references. Immutable tags (the flag, or an immutable-tag rule: services/immutability.py) are
never deleted, and a push never moves them (manifest_put).

`retention_apply` evaluates the policies repository by repository (retention_rules.py, the
evaluation the API's dry-run plan uses too) and deletes the selected tags in batches: lock FOR
UPDATE SKIP LOCKED, check again (not immutable now, no rule protects it now, not pushed again
since the evaluation), delete the rows and record their bucket objects in one transaction, then
drain the objects. A dry run evaluates the same and lists what would go.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from gateway.core.errors import NotFound, ValidationError
from gateway.registry import locks
from gateway.registry.models import JobRun, Repository, RetentionPolicy, Tag
from gateway.registry.services import events
from gateway.registry.services.deletions import DeletionItem, object_deletions_drain, object_deletions_record
from gateway.registry.services.gc_sweep import GcSettings
from gateway.registry.services.immutability import immutable_rules_load
from gateway.registry.services.jobruns import JobReport, jobrun_claim, jobrun_record, jobrun_to_completion
from gateway.registry.services.retention_rules import LISTED_MAX, Policies, repository_verdicts
from gateway.registry.services.retention_rules import TagVerdict as _Doomed

log = logging.getLogger(__name__)

KIND_RETENTION = "retention"
MAX_DAYS = 36_500
MAX_KEEP_LAST = 1_000_000
_REGEX_MAX = 255


class RetentionPolicyInvalid(ValidationError):
    """A retention policy value that cannot be stored (the message says which and why)."""


# -- policies -------------------------------------------------------------------------------------


def _invalid(name: str, message: str) -> RetentionPolicyInvalid:
    """The error, naming its field (the admin API lists it under `errors`)."""
    return RetentionPolicyInvalid(message, extra={"errors": {name: message}})


def _check_count(name: str, value: int | None, *, minimum: int, maximum: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise _invalid(name, f"{name} must be a whole number from {minimum} to {maximum}, got {value!r}")


def _check_regex(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise _invalid(name, f"{name} must be a string, got {type(value).__name__}")
    if len(value) > _REGEX_MAX:
        raise _invalid(name, f"{name} is {len(value)} characters; at most {_REGEX_MAX} are allowed")
    if "\x00" in value:
        raise _invalid(name, f"{name} must not contain NUL characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise _invalid(name, f"{name} {value!r} is not a valid regular expression: {exc}") from None


def retention_policy_check(
    *,
    enabled: bool = True,
    keep_last: int | None = None,
    older_than_days: int | None = None,
    delete_regex: str = "",
    keep_regex: str = "",
    untagged_days: int | None = None,
) -> dict[str, Any]:
    """The policy's values, each validated (numbers in range, regexes compiled); RetentionPolicyInvalid names the first bad one."""
    if not isinstance(enabled, bool):
        raise _invalid("enabled", f"enabled must be true or false, got {enabled!r}")
    _check_count("keep_last", keep_last, minimum=0, maximum=MAX_KEEP_LAST)
    _check_count("older_than_days", older_than_days, minimum=0, maximum=MAX_DAYS)
    _check_count("untagged_days", untagged_days, minimum=0, maximum=MAX_DAYS)
    _check_regex("delete_regex", delete_regex)
    _check_regex("keep_regex", keep_regex)
    return {
        "enabled": enabled,
        "keep_last": keep_last,
        "older_than_days": older_than_days,
        "delete_regex": delete_regex,
        "keep_regex": keep_regex,
        "untagged_days": untagged_days,
    }


def retention_policy_set(*, tenant: Tenant, repository: Repository | None = None, **values: Any) -> RetentionPolicy:
    """Create or replace the policy of `repository` (None: the tenant-wide one) with `values` (retention_policy_check's)."""
    if repository is not None and repository.tenant_id != tenant.pk:
        raise RetentionPolicyInvalid(f"repository {repository.name!r} does not belong to tenant {tenant.slug!r}")
    values = retention_policy_check(**values)
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


# -- runs -----------------------------------------------------------------------------------------


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
        rules = immutable_rules_load(tenant=tenant)  # again: a rule added since the evaluation protects its tags too
        gone = [
            t
            for t in rows
            if t.last_pushed_at == expected[t.pk].pushed
            and rules.reason(repository=t.repository.name, tag=t.name, immutable=t.immutable) is None
        ]
        if gone:
            Tag.objects.filter(pk__in=[t.pk for t in gone]).delete()
            object_deletions_record(
                tenant=tenant,
                items=[
                    DeletionItem.tag(
                        tenant_id=tenant.pk,
                        repository=t.repository.name,
                        name=t.name,
                        digest=t.manifest.digest,
                        pushed_at=t.last_pushed_at,
                    )
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
        policies = Policies.load(tenant)
        immutable = immutable_rules_load(tenant=tenant)
        batch, more = policies.repositories_next(tenant=tenant, after_repository_id=after_repository_id, limit=max_repositories)
        for repo in batch:
            verdicts = repository_verdicts(repository=repo, policies=policies, now=now, immutable=immutable)
            if verdicts is None:
                continue
            doomed = [v for v in verdicts if v.delete]
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
