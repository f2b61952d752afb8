"""Repositories: created on first push; their settings (visibility)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

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
            return Repository.objects.create(tenant=tenant, name=name)
    except IntegrityError:
        return Repository.objects.get(tenant=tenant, name=name)


def repository_visibility_set(*, tenant: Tenant, name: str, visibility: str, actor: str = "") -> Repository:
    """Make a repository public (anonymous pull) or private; audited; idempotent."""
    if visibility not in Repository.Visibility.values:
        raise ValidationError(f"visibility must be one of {', '.join(Repository.Visibility.values)}, got {visibility!r}")
    with transaction.atomic():
        repo = Repository.objects.select_for_update().filter(tenant=tenant, name=name).first()
        if repo is None:
            raise NotFound(f"no repository {tenant.slug}/{name}")
        if repo.visibility != visibility:
            repo.visibility = visibility
            repo.save(update_fields=["visibility", "updated_at"])
            audit_record(
                action="repository.visibility", actor=actor, tenant=tenant, target=name, detail={"visibility": visibility}
            )
    return repo
