"""Create the platform bucket if it does not exist, then check it answers."""

from django.core.management.base import BaseCommand, CommandError

from gateway.storage import StorageError, get_blob_store


class Command(BaseCommand):
    help = "Create the configured S3 bucket when missing (idempotent) and check it is reachable."

    def handle(self, *args, **options):
        store = get_blob_store()
        try:
            store.bucket_ensure()
            store.check()
        except StorageError as exc:
            raise CommandError(f"bucket {store.bucket!r}: {exc}") from None
