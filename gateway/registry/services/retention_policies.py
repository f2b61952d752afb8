"""Retention policies as the admin API manages them: create (one per scope), change, delete — validated and audited.

The values are checked by `retention.retention_policy_check`, the same checks `retention_policy_set`
(the management command's upsert) makes. A policy's scope (its repository, or none: the tenant)
is fixed when it is created.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Tenant
from gateway.core.errors import Conflict
from gateway.registry.models import Repository, RetentionPolicy
from gateway.registry.services.retention import retention_policy_check, retention_policy_describe


def retention_policy_draft(*, tenant: Tenant, repository: Repository | None, **values: Any) -> RetentionPolicy:
    """An unsaved policy with these (validated) values: what the dry run evaluates before anyone saves it."""
    return RetentionPolicy(tenant=tenant, repository=repository, **retention_policy_check(**values))


def retention_policy_create(*, tenant: Tenant, repository: Repository | None, actor: str, **values: Any) -> RetentionPolicy:
    """The policy of `repository` (None: the tenant-wide one); 409 if that scope has one already. Audited."""
    policy = retention_policy_draft(tenant=tenant, repository=repository, **values)
    scope = f"repository {repository.name!r}" if repository is not None else "the tenant"
    try:
        with transaction.atomic():
            policy.save()
            _audit("retention_policy.create", tenant=tenant, policy=policy, actor=actor)
    except IntegrityError:
        raise Conflict(f"{scope} has a retention policy already; change that one") from None
    return policy


def retention_policy_update(*, tenant: Tenant, policy: RetentionPolicy, actor: str, **changes: Any) -> RetentionPolicy:
    """Change some of a policy's values (the caller holds its row lock); audited when something changed."""
    current = {k: v for k, v in retention_policy_describe(policy).items() if k != "repository"}
    values = retention_policy_check(**{**current, **changes})
    if values == current:
        return policy
    with transaction.atomic():
        RetentionPolicy.objects.filter(tenant=tenant, pk=policy.pk).update(**values, updated_at=timezone.now())
        policy.refresh_from_db()
        _audit("retention_policy.update", tenant=tenant, policy=policy, actor=actor)
    return policy


def retention_policy_delete(*, tenant: Tenant, policy: RetentionPolicy, actor: str) -> None:
    """Remove a policy (the caller holds its row lock). Audited."""
    with transaction.atomic():
        _audit("retention_policy.delete", tenant=tenant, policy=policy, actor=actor)
        RetentionPolicy.objects.filter(tenant=tenant, pk=policy.pk).delete()


def _audit(action: str, *, tenant: Tenant, policy: RetentionPolicy, actor: str) -> None:
    detail = retention_policy_describe(policy)
    audit_record(action=action, actor=actor, tenant=tenant, target=str(policy.pk), detail=detail)
