"""replication_status [--tenant T] → JSON: per tenant, replication lag and health plus integrity state."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway.replication.management.base import dumps, tenant_or_error
from gateway.replication.selectors import replication_status_list


class Command(BaseCommand):
    help = "Per tenant: replicated/pending/failed objects, lag (age of the oldest unreplicated object), health, audit state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant")

    def handle(self, *args: Any, tenant: str | None, **options: Any) -> None:
        self.stdout.write(dumps(replication_status_list(tenant=tenant_or_error(tenant))))
