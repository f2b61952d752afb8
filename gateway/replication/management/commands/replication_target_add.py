"""replication_target_add NAME --endpoint-url URL --bucket B --access-key K --secret-key-stdin → JSON (no secret)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.core.errors import ApplicationError
from gateway.replication.management.base import dumps
from gateway.replication.targets import storage_target_create


class Command(BaseCommand):
    help = (
        "Register a secondary S3 target for replication (another bucket, another Storj project, any S3). "
        "The secret key is read from stdin and stored encrypted. The bucket must answer (or use --create-bucket)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="a short name, e.g. backup-eu")
        parser.add_argument("--endpoint-url", required=True)
        parser.add_argument("--bucket", required=True)
        parser.add_argument("--region", default="us-1")
        parser.add_argument("--addressing-style", default="path", choices=["path", "virtual"])
        parser.add_argument("--access-key", required=True)
        parser.add_argument("--secret-key-stdin", action="store_true", required=True, help="read the secret key from stdin")
        parser.add_argument("--create-bucket", action="store_true", help="create the bucket if it does not exist")

    def handle(self, *args: Any, **o: Any) -> None:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise CommandError("no secret key on stdin")
        try:
            target = storage_target_create(
                name=o["name"],
                endpoint_url=o["endpoint_url"],
                bucket=o["bucket"],
                region=o["region"],
                addressing_style=o["addressing_style"],
                access_key=o["access_key"],
                secret_key=secret,
                create_bucket=o["create_bucket"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            dumps(
                {
                    "id": target.pk,
                    "name": target.name,
                    "endpoint_url": target.endpoint_url,
                    "bucket": target.bucket,
                    "region": target.region,
                    "addressing_style": target.addressing_style,
                    "enabled": target.enabled,
                }
            )
        )
