"""tag_immutable TENANT_SLUG REPOSITORY TAG [--off] → mark a tag immutable (pushes may not move it, retention never deletes it)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.core.errors import ApplicationError
from gateway.registry import selectors
from gateway.registry.management.commands.gc import tenants_from_option
from gateway.registry.services.retention import tag_immutable_set


class Command(BaseCommand):
    help = (
        "Mark a tag immutable (a push that would move it is refused with DENIED; retention never deletes it), or --off to undo."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="TENANT_SLUG")
        parser.add_argument("repository", metavar="REPOSITORY")
        parser.add_argument("tag", metavar="TAG")
        parser.add_argument("--off", action="store_true", help="make the tag mutable again")

    def handle(self, *args: Any, slug: str, repository: str, tag: str, off: bool, **options: Any) -> None:
        tenant = tenants_from_option(slug)[0]
        repo = selectors.repository_get(tenant=tenant, name=repository)
        if repo is None:
            raise CommandError(f"tenant {slug!r} has no repository {repository!r}")
        try:
            t = tag_immutable_set(tenant=tenant, repository=repo, name=tag, immutable=not off)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps({"repository": repository, "tag": t.name, "immutable": t.immutable}))
