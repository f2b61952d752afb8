"""uploads_cleanup [--tenant SLUG] [--dry-run] [--idle-seconds N] → JSON: stale sessions and orphaned multipart uploads aborted.

Runs exactly the code of the `gateway.uploads.cleanup` task chain (services/cleanup.py), synchronously.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.registry.management.commands.gc import non_negative, tenants_from_option
from gateway.registry.services.cleanup import uploads_cleanup_to_completion
from gateway.storage import StorageError


class Command(BaseCommand):
    help = (
        "Abort upload sessions idle past the timeout (multipart upload aborted, tail dropped), delete old finished "
        "session rows, and abort multipart uploads in the bucket that no session owns. Prints a JSON summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant (default: every tenant)")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; list what would be aborted")
        parser.add_argument(
            "--idle-seconds",
            type=non_negative,
            default=None,
            metavar="N",
            help="sessions idle (and orphans started) at least N seconds ago (default: GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS)",
        )

    def handle(self, *args: Any, tenant: str | None, dry_run: bool, idle_seconds: int | None, **options: Any) -> None:
        timeout = None if idle_seconds is None else timedelta(seconds=idle_seconds)
        results: list[dict[str, Any]] = []
        failed = False
        for t in tenants_from_option(tenant):
            try:
                report = uploads_cleanup_to_completion(tenant=t, dry_run=dry_run, idle_timeout=timeout)
            except StorageError as exc:
                failed = True
                results.append({"tenant": t.slug, "error": f"storage: {exc}"})
                continue
            if report is None:
                results.append({"tenant": t.slug, "skipped": "an upload sweep of this tenant is running in another process"})
                continue
            results.append(report.as_dict())
            failed = failed or bool(report.errors)
        self.stdout.write(json.dumps({"dry_run": dry_run, "tenants": results}, indent=2, default=str))
        if failed:
            raise CommandError("the upload sweep finished with errors (see the JSON above)")
