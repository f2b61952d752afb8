"""audit [--tenant T] [--sample-rate R] [--due-only] → JSON summary of one integrity audit run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.replication.integrity import integrity_audit
from gateway.replication.management.base import dumps, fraction, tenant_or_error
from gateway.storage import StorageError


class Command(BaseCommand):
    help = (
        "Audit blob and manifest objects in the bucket now, synchronously, with the code the periodic task runs: "
        "HEAD every object (existence, size, ETag), re-hash a sample and everything flagged, repair from a "
        "replica (or a manifest's bytes in the database) and report problems. Prints a JSON summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant's objects (default: every tenant)")
        parser.add_argument(
            "--sample-rate",
            type=fraction,
            default=None,
            metavar="R",
            help="share of objects to download and re-hash, 0..1 (default GATEWAY_AUDIT_SAMPLE_RATE; 1 = all)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=None, metavar="N", help="objects per batch (default GATEWAY_AUDIT_BATCH_SIZE)"
        )
        parser.add_argument(
            "--due-only",
            action="store_true",
            help="only objects not checked for GATEWAY_AUDIT_INTERVAL_HOURS, as the periodic task does (default: every object)",
        )

    def handle(
        self, *args: Any, tenant: str | None, sample_rate: float | None, batch_size: int | None, due_only: bool, **options: Any
    ) -> None:
        t = tenant_or_error(tenant)
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}")
        try:
            result = integrity_audit(
                tenant_id=t.pk if t else None, full=not due_only, sample_rate=sample_rate, batch_size=batch_size, max_batches=None
            )
        except StorageError as exc:
            raise CommandError(f"storage: {exc}") from None
        self.stdout.write(dumps({**result.as_dict(), "tenant": tenant}))
