"""replicate [--tenant T] → JSON summary: backfill, copy everything due now, verify due replicas; then lag figures."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.replication.management.base import dumps, tenant_or_error
from gateway.replication.selectors import replication_status_list
from gateway.replication.sweep import replication_sweep
from gateway.storage import StorageError


class Command(BaseCommand):
    help = (
        "Replicate now, synchronously, with the code the periodic sweep and the per-object tasks run: create rows "
        "for objects without a replica, copy and verify every pending, failed or mismatched object (each once, "
        "ignoring backoff and the attempt limit), re-verify replicas due a check. Prints a JSON summary with each "
        "tenant's lag and health."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant (default: every tenant that replicates)")
        parser.add_argument(
            "--batch-size", type=int, default=None, metavar="N", help="rows per batch (default GATEWAY_REPLICATION_BATCH_SIZE)"
        )

    def handle(self, *args: Any, tenant: str | None, batch_size: int | None, **options: Any) -> None:
        t = tenant_or_error(tenant)
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}")
        run_id = None
        try:
            while True:
                result = replication_sweep(
                    tenant_id=t.pk if t else None, sync=True, force=True, batch_size=batch_size, run_id=run_id
                )
                run_id = result.run.pk
                if not result.more:
                    break
        except StorageError as exc:
            raise CommandError(f"storage: {exc}") from None
        self.stdout.write(dumps({**result.as_dict(), "tenant": tenant, "status": replication_status_list(tenant=t)}))
