"""webhook_add TENANT URL [--events E,...] → JSON with the endpoint and its signing secret (shown once)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from gateway.core.errors import ApplicationError
from gateway.webhooks.models import EVENTS
from gateway.webhooks.services import webhook_endpoint_create


class Command(BaseCommand):
    help = "Register a webhook endpoint for a tenant. Prints JSON including the signing secret, which is not shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", metavar="TENANT_SLUG")
        parser.add_argument("url", metavar="URL", help="http(s) URL that receives signed JSON POSTs")
        parser.add_argument(
            "--events",
            action="append",
            default=[],
            metavar="E[,E...]",
            help=f"events to send (repeatable, comma-separated): {', '.join(EVENTS)} or * (default: *)",
        )
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, slug: str, url: str, events: list[str], description: str, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}")
        names = [e.strip() for value in events for e in value.split(",") if e.strip()] or ["*"]
        try:
            created = webhook_endpoint_create(tenant=tenant, url=url, events=names, description=description)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        e = created.endpoint
        self.stdout.write(
            json.dumps({"id": e.pk, "tenant": slug, "url": e.url, "events": e.events, "secret": created.secret}, indent=2)
        )
