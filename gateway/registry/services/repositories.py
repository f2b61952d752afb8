"""Repositories: created on first push; their settings (visibility)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.limits import limit_check
from accounts.models import Tenant
from accounts.services import audit_record
from gateway.core.errors import NotFound, ValidationError
from gateway.registry import selectors
from gateway.registry.models import Repository


def repository_ensure(*, tenant: Tenant, name: str) -> Repository:
    """The repository, created on first push. Callers have checked push permission."""
    repo = selectors.repository_get(tenant=tenant, name=name)
    if repo is not None:
        return repo
    try:
        with transaction.atomic():
            # Created private (the default): the plan's private-repository limit applies (DENIED on /v2/).
            _private_limit_check(tenant=tenant)
            return Repository.objects.create(tenant=tenant, name=name)
    except IntegrityError:
        return Repository.objects.get(tenant=tenant, name=name)


def _private_limit_check(*, tenant: Tenant) -> None:
    """QuotaExceeded when the tenant's private repositories (not counting those being deleted) fill its plan's limit."""

    def count() -> int:
        return Repository.objects.filter(tenant=tenant, visibility=Repository.Visibility.PRIVATE, deleted_name="").count()

    limit_check(tenant=tenant, field="private_repositories_limit", what="private repositories", count=count)


def _repository_setting_set(
    *, tenant: Tenant, name: str, field: str, value: str, action: str, actor: str, detail: dict | None = None
) -> Repository:
    """Set one setting of a repository under its row lock; audited as `action` when it changes; idempotent."""
    with transaction.atomic():
        repo = Repository.objects.select_for_update().filter(tenant=tenant, name=name).first()
        if repo is None:
            raise NotFound(f"no repository {tenant.slug}/{name}")
        if getattr(repo, field) != value:
            setattr(repo, field, value)
            repo.save(update_fields=[field, "updated_at"])
            audit_record(action=action, actor=actor, tenant=tenant, target=name, detail=detail)
    return repo


def repository_visibility_set(*, tenant: Tenant, name: str, visibility: str, actor: str = "") -> Repository:
    """Make a repository public (anonymous pull) or private; audited; idempotent."""
    if visibility not in Repository.Visibility.values:
        raise ValidationError(f"visibility must be one of {', '.join(Repository.Visibility.values)}, got {visibility!r}")
    with transaction.atomic():
        current = Repository.objects.filter(tenant=tenant, name=name).values_list("visibility", flat=True).first()
        if visibility == Repository.Visibility.PRIVATE and current == Repository.Visibility.PUBLIC:
            _private_limit_check(tenant=tenant)
        return _repository_setting_set(
            tenant=tenant,
            name=name,
            field="visibility",
            value=visibility,
            action="repository.visibility",
            actor=actor,
            detail={"visibility": visibility},
        )


def repository_description_set(*, tenant: Tenant, name: str, description: str, actor: str = "") -> Repository:
    """Set a repository's description (at most 1000 characters); audited when it changes; idempotent."""
    if len(description) > 1000:
        raise ValidationError(f"description must be at most 1000 characters, got {len(description)}")
    return _repository_setting_set(
        tenant=tenant, name=name, field="description", value=description, action="repository.description", actor=actor
    )


def repository_update(
    *, tenant: Tenant, name: str, visibility: str | None = None, description: str | None = None, actor: str = ""
) -> Repository:
    """Change the settings given (visibility, description) in one transaction; each audited as it changes."""
    with transaction.atomic():
        repo = None
        if visibility is not None:
            repo = repository_visibility_set(tenant=tenant, name=name, visibility=visibility, actor=actor)
        if description is not None:
            repo = repository_description_set(tenant=tenant, name=name, description=description, actor=actor)
        if repo is None:
            raise ValidationError("nothing to change: give visibility, description or both")
    return repo
