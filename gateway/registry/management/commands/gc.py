"""gc [--tenant SLUG] [--dry-run] [--grace-seconds N] [--batch-size N] → JSON summary of the garbage collection.

Runs exactly the code of the `gateway.gc.tenant` task chain (services/gc.py), synchronously,
invocation after invocation until each tenant is done.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from gateway.registry.services.gc import gc_run_to_completion
from gateway.storage import StorageError


def tenants_from_option(slug: str | None) -> list[Tenant]:
    """The tenant named by --tenant (CommandError if unknown), or every tenant in id order."""
    if slug is None:
        return list(Tenant.objects.order_by("pk"))
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {slug!r}")
    return [tenant]


def non_negative(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise CommandError(f"expected a whole number, got {value!r}") from None
    if n < 0:
        raise CommandError(f"expected a number of at least 0, got {n}")
    return n


class Command(BaseCommand):
    help = (
        "Garbage-collect unreferenced manifests and blobs (rows, then objects) of one tenant or all, "
        "the same code the periodic task runs. Prints a JSON summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant (default: every tenant)")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; list what would be deleted")
        parser.add_argument(
            "--grace-seconds",
            type=non_negative,
            default=None,
            metavar="N",
            help="delete only what has been unreferenced at least N seconds (default: GATEWAY_GC_GRACE_SECONDS)",
        )
        parser.add_argument("--batch-size", type=non_negative, default=None, metavar="N", help="rows per transaction, 1..1000")

    def handle(
        self, *args: Any, tenant: str | None, dry_run: bool, grace_seconds: int | None, batch_size: int | None, **options: Any
    ) -> None:
        if batch_size is not None and not 1 <= batch_size <= 1000:
            raise CommandError(f"--batch-size must be between 1 and 1000, got {batch_size}")
        grace = None if grace_seconds is None else timedelta(seconds=grace_seconds)
        results: list[dict[str, Any]] = []
        totals: dict[str, int] = {}
        failed = False
        for t in tenants_from_option(tenant):
            try:
                report = gc_run_to_completion(tenant=t, dry_run=dry_run, grace=grace, batch_size=batch_size)
            except StorageError as exc:
                failed = True
                results.append({"tenant": t.slug, "error": f"storage: {exc}"})
                continue
            if report is None:
                results.append({"tenant": t.slug, "skipped": "a GC of this tenant is running in another process"})
                continue
            doc = report.as_dict()
            results.append(doc)
            for k in ("manifests_deleted", "blobs_deleted", "objects_deleted"):
                totals[k] = totals.get(k, 0) + report.counts.get(k, 0)
            totals["bytes_freed"] = totals.get("bytes_freed", 0) + report.bytes_freed
            failed = failed or bool(report.errors)
        self.stdout.write(json.dumps({"dry_run": dry_run, "totals": totals, "tenants": results}, indent=2, default=str))
        if failed:
            raise CommandError("GC finished with errors (see the JSON above)")
