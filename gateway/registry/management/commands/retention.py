"""retention: apply retention policies (JSON report), or show / set / clear a policy.

retention [--tenant SLUG] [--dry-run]                      apply (the `gateway.retention.tenant` task's code)
retention --tenant SLUG [--repository NAME] --show         the policy in force
retention --tenant SLUG [--repository NAME] --set [--keep-last N] [--older-than-days D]
          [--delete-regex RE] [--keep-regex RE] [--untagged-days D] [--disabled]
retention --tenant SLUG [--repository NAME] --clear
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.core.errors import ApplicationError
from gateway.registry import selectors
from gateway.registry.management.commands.gc import non_negative, tenants_from_option
from gateway.registry.models import RetentionPolicy
from gateway.registry.services.retention import (
    retention_apply_to_completion,
    retention_policy_clear,
    retention_policy_describe,
    retention_policy_set,
)
from gateway.storage import StorageError


class Command(BaseCommand):
    help = (
        "Delete tags by the retention policies (keep the last N, delete matching / not matching a regex older than D days, "
        "never immutable tags), or manage a policy. Prints JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="SLUG", help="the tenant (required for --show/--set/--clear)")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; list the tags that would be deleted")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--show", action="store_true", help="print the policy of the tenant or --repository")
        action.add_argument("--set", action="store_true", help="create or replace the policy of the tenant or --repository")
        action.add_argument("--clear", action="store_true", help="remove the policy of the tenant or --repository")
        parser.add_argument("--repository", metavar="NAME", help="a repository's own policy (default: the tenant-wide one)")
        parser.add_argument("--keep-last", type=non_negative, metavar="N", help="always keep the N most recently pushed tags")
        parser.add_argument(
            "--older-than-days", type=non_negative, metavar="D", help="delete only tags last pushed more than D days ago"
        )
        parser.add_argument("--delete-regex", default="", metavar="RE", help="delete only tags fully matching RE")
        parser.add_argument("--keep-regex", default="", metavar="RE", help="never delete tags fully matching RE")
        parser.add_argument(
            "--untagged-days", type=non_negative, metavar="D", help="GC keeps untagged manifests D days after their push"
        )
        parser.add_argument("--disabled", action="store_true", help="store the policy switched off")

    def handle(self, *args: Any, **o: Any) -> None:
        if o["show"] or o["set"] or o["clear"]:
            self._policy(o)
            return
        if (
            o["repository"]
            or o["keep_last"] is not None
            or o["delete_regex"]
            or o["keep_regex"]
            or o["older_than_days"] is not None
        ):
            raise CommandError("policy options need --set (or --show / --clear)")
        results: list[dict[str, Any]] = []
        failed = False
        for t in tenants_from_option(o["tenant"]):
            try:
                report = retention_apply_to_completion(tenant=t, dry_run=o["dry_run"])
            except StorageError as exc:
                failed = True
                results.append({"tenant": t.slug, "error": f"storage: {exc}"})
                continue
            if report is None:
                results.append({"tenant": t.slug, "skipped": "retention of this tenant is running in another process"})
                continue
            results.append(report.as_dict())
            failed = failed or bool(report.errors)
        self.stdout.write(json.dumps({"dry_run": o["dry_run"], "tenants": results}, indent=2, default=str))
        if failed:
            raise CommandError("retention finished with errors (see the JSON above)")

    def _policy(self, o: dict[str, Any]) -> None:
        if not o["tenant"]:
            raise CommandError("--tenant is required with --show, --set and --clear")
        tenant = tenants_from_option(o["tenant"])[0]
        repository = None
        if o["repository"]:
            repository = selectors.repository_get(tenant=tenant, name=o["repository"])
            if repository is None:
                raise CommandError(f"tenant {tenant.slug!r} has no repository {o['repository']!r}")
        if o["clear"]:
            removed = retention_policy_clear(tenant=tenant, repository=repository)
            self.stdout.write(json.dumps({"cleared": removed}))
            return
        if o["set"]:
            try:
                policy = retention_policy_set(
                    tenant=tenant,
                    repository=repository,
                    enabled=not o["disabled"],
                    keep_last=o["keep_last"],
                    older_than_days=o["older_than_days"],
                    delete_regex=o["delete_regex"],
                    keep_regex=o["keep_regex"],
                    untagged_days=o["untagged_days"],
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
        else:
            found = RetentionPolicy.objects.filter(tenant=tenant, repository=repository).select_related("repository").first()
            if found is None:
                self.stdout.write(json.dumps({"policy": None}))
                return
            policy = found
        self.stdout.write(json.dumps({"policy": retention_policy_describe(policy)}, indent=2))
