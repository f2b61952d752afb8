"""replication_set TENANT (--target NAME | --off) → JSON: opt a tenant in to replication, or out."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.core.errors import ApplicationError
from gateway.replication.management.base import dumps, tenant_or_error
from gateway.replication.selectors import replication_status_get
from gateway.replication.targets import storage_target_get, tenant_replication_set


class Command(BaseCommand):
    help = "Replicate a tenant's blobs and manifests to a storage target (existing content is backfilled), or stop (--off)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="TENANT_SLUG")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--target", metavar="NAME", help="a target registered with replication_target_add")
        group.add_argument("--off", action="store_true", help="stop replicating this tenant (replicas are kept)")

    def handle(self, *args: Any, slug: str, target: str | None, off: bool, **options: Any) -> None:
        tenant = tenant_or_error(slug)
        assert tenant is not None
        chosen = None
        if not off:
            chosen = storage_target_get(name=target or "")
            if chosen is None:
                raise CommandError(f"no storage target named {target!r} (see replication_target_add)")
        try:
            tenant_replication_set(tenant=tenant, target=chosen)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(dumps(replication_status_get(tenant=tenant)))
