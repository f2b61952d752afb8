"""Secondary storage targets, per-tenant opt-in, per-object replica state and per-object audit state.

Per-run records are `gateway.registry.models.JobRun` rows (kind "audit" / "replication").
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from gateway.core.models import TenantOwnedModel, TimeStampedModel


class ObjectKind(models.TextChoices):
    BLOB = "blob"
    MANIFEST = "manifest"


class StorageTarget(TimeStampedModel):
    """A secondary S3 bucket (another bucket, another Storj project, any S3). The secret key is encrypted at rest.

    `tenant` null: a platform target (staff manage it, any tenant may choose it); else the tenant's own
    (bring-your-own bucket), which only that tenant sees or chooses. Names are unique per owner.
    """

    class AddressingStyle(models.TextChoices):
        PATH = "path"
        VIRTUAL = "virtual"

    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    name = models.SlugField(max_length=63)
    endpoint_url = models.URLField(max_length=500)
    bucket = models.CharField(max_length=63)
    region = models.CharField(max_length=64, default="us-1")
    addressing_style = models.CharField(max_length=8, choices=AddressingStyle.choices, default=AddressingStyle.PATH)
    access_key = models.CharField(max_length=256)
    # Fernet token (gateway.core.crypto); never the plain secret.
    secret_key_encrypted = models.TextField()
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(tenant__isnull=True), name="storagetarget_unique_platform_name"),
            models.UniqueConstraint(fields=["tenant", "name"], name="storagetarget_unique_tenant_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.endpoint_url}/{self.bucket})"


class TenantReplication(TenantOwnedModel):
    """A tenant's opt-in: its blobs and manifests are copied to `target`."""

    # RESTRICT, not PROTECT: a target in use cannot be deleted on its own, but a tenant's deletion takes its own
    # targets and its settings together.
    target = models.ForeignKey(StorageTarget, on_delete=models.RESTRICT, related_name="tenants")
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="tenantreplication_unique_tenant")]


class ObjectReplica(TenantOwnedModel):
    """The copy of one blob or manifest (by digest) on one target, and how it got there.

    A blob's replica is its data object at the primary's key plus its index object; a
    manifest's is its exact bytes at the manifest key of every repository holding it.
    `replica_keys` lists what was written, so stale copies can be removed.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        REPLICATED = "replicated"
        FAILED = "failed"
        MISMATCH = "mismatch"

    target = models.ForeignKey(StorageTarget, on_delete=models.CASCADE, related_name="replicas")
    kind = models.CharField(max_length=8, choices=ObjectKind.choices)
    digest = models.CharField(max_length=135)
    size = models.BigIntegerField(default=0)
    source_key = models.CharField(max_length=512)
    replica_keys = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # Since when this object has been waiting for a (re)copy: the replication lag.
    pending_since = models.DateTimeField(null=True, blank=True)
    # No automatic retry before this (backoff); null = due now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Held by the worker copying it (renewed per part), so two copies never run at once.
    lease_until = models.DateTimeField(null=True, blank=True)
    # A multipart upload to the target in progress; aborted by the next attempt if a worker died.
    multipart_id = models.CharField(max_length=1024, blank=True, default="")
    multipart_key = models.CharField(max_length=512, blank=True, default="")
    replicated_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target", "kind", "tenant", "digest"], name="objectreplica_unique_target_kind_tenant_digest"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="objectreplica_due_idx"),
            models.Index(fields=["tenant", "state"], name="objectreplica_tenant_state_idx"),
            models.Index(fields=["state", "verified_at"], name="objectreplica_verify_idx"),
        ]


class ObjectAudit(TenantOwnedModel):
    """Integrity state of one primary object (a blob's data object or a manifest's object in a repository).

    Linked to its Blob or Manifest row without a database constraint (GC deletes those rows in
    ways we must never block); Django's delete still cascades, and a row whose object's row
    vanished otherwise is dropped by the next audit that meets it.
    """

    class Status(models.TextChoices):
        UNCHECKED = "unchecked"
        OK = "ok"
        MISSING = "missing"
        SIZE_MISMATCH = "size_mismatch"
        CORRUPT = "corrupt"
        REPAIRED = "repaired"

    PROBLEMS = (Status.MISSING, Status.SIZE_MISMATCH, Status.CORRUPT)

    kind = models.CharField(max_length=8, choices=ObjectKind.choices)
    blob = models.OneToOneField(
        "registry.Blob", on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, related_name="integrity_audit"
    )
    manifest = models.OneToOneField(
        "registry.Manifest", on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, related_name="integrity_audit"
    )
    digest = models.CharField(max_length=135)
    key = models.CharField(max_length=512)
    size = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCHECKED)
    detail = models.JSONField(default=dict, blank=True)
    # Re-hash at the next check (a problem was seen, the ETag changed, or a replica copy disagreed).
    flagged = models.BooleanField(default=False)
    # The ETag seen when the object was last known good: a change means it was rewritten.
    etag = models.CharField(max_length=128, blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_deep_checked_at = models.DateTimeField(null=True, blank=True)
    last_problem_at = models.DateTimeField(null=True, blank=True)
    repaired_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="blob", blob__isnull=False, manifest__isnull=True)
                    | Q(kind="manifest", manifest__isnull=False, blob__isnull=True)
                ),
                name="objectaudit_one_source",
            ),
        ]
        indexes = [
            models.Index(fields=["last_checked_at"], name="objectaudit_due_idx"),
            models.Index(fields=["tenant", "status"], name="objectaudit_tenant_status_idx"),
            models.Index(fields=["flagged", "last_checked_at"], name="objectaudit_flagged_idx"),
        ]
