"""registry_rebuild TENANT_SLUG [--from-tenant-id N] → JSON report of what was restored from the bucket."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from gateway.core.errors import ApplicationError
from gateway.registry.services.rebuild import registry_rebuild
from gateway.storage import StorageError


class Command(BaseCommand):
    help = (
        "Recreate a tenant's missing registry rows (blobs, repositories, manifests, tags) from the bucket. "
        "Idempotent: existing rows are kept. Prints a JSON report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="TENANT_SLUG", help="the tenant to restore into (it must exist)")
        parser.add_argument(
            "--from-tenant-id",
            type=int,
            default=None,
            metavar="N",
            help="read the bucket prefix t/N/ of a tenant whose database row is gone (default: the tenant's own id)",
        )

    def handle(self, *args: Any, slug: str, from_tenant_id: int | None, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}; create it first (manage.py create_tenant)")
        if from_tenant_id is not None and from_tenant_id <= 0:
            raise CommandError(f"--from-tenant-id must be a positive integer, got {from_tenant_id}")
        try:
            report = registry_rebuild(tenant=tenant, source_tenant_id=from_tenant_id)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except StorageError as exc:
            raise CommandError(f"bucket: {exc}") from None
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
