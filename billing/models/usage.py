"""Metered usage (docs/decisions/0041): hourly aggregates for invoices, and the daily storage reconciliation."""

from __future__ import annotations

from django.db import models

from gateway.core.models import TenantOwnedModel

TENANT_TOTAL = ""  # UsageRecord.repository of the tenant-wide row (its storage sample is what is billed)


class UsageRecord(TenantOwnedModel):
    """What one tenant used in one UTC hour, per repository (by name: metering outlives a deleted repository).

    Traffic (billing/metering.py `usage_records_fold`, from the registry's event stream, added with
    ON CONFLICT DO UPDATE inside the stream's delivery transaction, so exactly once):
    `pulls` counts GETs of image manifests (an index GET is not a pull, as Docker Hub counts: one
    per platform manifest); `egress_proxied_bytes` the bytes Wharf itself sent (manifests, blobs
    streamed through, counted as actually written); `egress_redirect_bytes` blobs handed to the
    bucket by a presigned redirect, at the blob's size.

    Storage (`usage_storage_sample`, hourly): `storage_byte_hours` is the stored bytes sampled once
    in the hour, i.e. byte-hours for that hour; `storage_sampled_at` says when (NULL: not sampled,
    and the hour is never sampled twice). The TENANT_TOTAL row holds the tenant's bytes counted once
    each (what is billed); a repository's row holds its manifests and linked blobs, so shared blobs
    count in every repository that links them and repository rows do not add up to the total.
    """

    repository = models.CharField(max_length=255, blank=True)
    hour = models.DateTimeField()  # the start of the UTC hour
    pulls = models.BigIntegerField(default=0)
    egress_proxied_bytes = models.BigIntegerField(default=0)
    egress_redirect_bytes = models.BigIntegerField(default=0)
    storage_byte_hours = models.BigIntegerField(default=0)
    storage_sampled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "repository", "hour"], name="usagerecord_unique_tenant_repository_hour"),
            models.CheckConstraint(
                condition=models.Q(
                    pulls__gte=0, egress_proxied_bytes__gte=0, egress_redirect_bytes__gte=0, storage_byte_hours__gte=0
                ),
                name="usagerecord_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "hour"], name="usagerecord_tenant_hour_idx")]

    def __str__(self) -> str:
        return f"usage of tenant {self.tenant_id} {self.repository or '(all)'} at {self.hour:%Y-%m-%d %H}:00"


class StorageDrift(TenantOwnedModel):
    """One day's comparison of the metered storage with the bucket (billing/reconciliation.py); one row per tenant and day.

    Counted on both sides: blob data objects (each Blob row's key) and manifest objects (one per
    Manifest row, per repository). Not counted, only tallied in `skipped_objects`: blob index
    objects, tag objects, upload tails and anything else under the tenant's prefix (all tiny or
    transient, and not metered). `difference_bytes` is actual − metered: positive when the bucket
    holds more than is billed.
    """

    day = models.DateField()
    metered_bytes = models.BigIntegerField()
    actual_bytes = models.BigIntegerField()
    difference_bytes = models.BigIntegerField()
    metered_objects = models.BigIntegerField()
    actual_objects = models.BigIntegerField()
    missing_objects = models.BigIntegerField()  # metered, but no object at its key
    missing_bytes = models.BigIntegerField()
    unexpected_objects = models.BigIntegerField()  # in the bucket where no row points
    unexpected_bytes = models.BigIntegerField()
    skipped_objects = models.BigIntegerField()
    skipped_bytes = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="storagedrift_unique_tenant_day")]

    def __str__(self) -> str:
        return f"storage drift of tenant {self.tenant_id} on {self.day}: {self.difference_bytes:+d} bytes"
