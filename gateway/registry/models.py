"""The OCI distribution domain: repositories, blobs, manifests, tags and upload sessions.

PostgreSQL is the truth for metadata; S3 holds bytes. A blob is stored once per tenant
(`Blob`, unique on tenant + digest) at the key its upload session wrote, and is visible
in a repository only through a `RepositoryBlob` link. Manifests keep their exact bytes
here (for fast serving) and in the bucket (so the bucket alone can rebuild the registry).
"""

from __future__ import annotations

import uuid

from django.db import models

from gateway.core.models import TenantOwnedModel


class Repository(TenantOwnedModel):
    class Visibility(models.TextChoices):
        PRIVATE = "private"
        PUBLIC = "public"

    name = models.CharField(max_length=255)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    description = models.CharField(max_length=1000, blank=True, default="")
    # Set while a deletion job empties the repository (services/repository_delete.py): `name` is then
    # a tombstone no client can address, so the name is free for new pushes at once.
    deleted_name = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="repository_unique_tenant_name")]

    def __str__(self) -> str:
        return self.name


class Blob(TenantOwnedModel):
    digest = models.CharField(max_length=135)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=512)
    # Set by GC's mark phase when no live manifest references the blob, cleared when one does
    # (or a push links it again). GC deletes only blobs marked longer than the grace period ago.
    gc_candidate_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "digest"], name="blob_unique_tenant_digest")]
        indexes = [
            # "Is this object still some blob's bytes?" (GC and the upload sweep, before deleting a key).
            models.Index(fields=["storage_key"], name="blob_storage_key_idx"),
            # GC walks its candidates by pk (a cursor), so the index is on (tenant, id) of marked rows only.
            models.Index(
                fields=["tenant", "id"], name="blob_gc_candidate_idx", condition=models.Q(gc_candidate_since__isnull=False)
            ),
        ]


class RepositoryBlob(TenantOwnedModel):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="blob_links")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="repository_links")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "blob"], name="repositoryblob_unique")]


class Manifest(TenantOwnedModel):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=135)
    media_type = models.CharField(max_length=255)
    size = models.IntegerField()
    payload = models.BinaryField()
    artifact_type = models.CharField(max_length=255, blank=True, default="")
    subject_digest = models.CharField(max_length=135, blank=True, default="", db_index=True)
    annotations = models.JSONField(default=dict, blank=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    # Set by GC's mark phase when no tag, index, live subject or retention rule keeps the manifest.
    gc_candidate_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="manifest_unique_repository_digest")]
        indexes = [
            models.Index(fields=["repository", "subject_digest"], name="manifest_subject_idx"),
            models.Index(
                fields=["tenant", "id"], name="manifest_gc_candidate_idx", condition=models.Q(gc_candidate_since__isnull=False)
            ),
        ]


class ManifestBlob(models.Model):
    """A blob a manifest references (config and layers): keeps the blob alive."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="blob_refs")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="manifest_refs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "blob"], name="manifestblob_unique")]

    def __str__(self) -> str:
        return f"manifest {self.manifest_id} → blob {self.blob_id}"


class ManifestChild(models.Model):
    """A manifest an index / manifest list references."""

    parent = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="child_refs")
    child = models.ForeignKey(Manifest, on_delete=models.PROTECT, related_name="parent_refs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["parent", "child"], name="manifestchild_unique")]

    def __str__(self) -> str:
        return f"index {self.parent_id} → manifest {self.child_id}"


class Tag(TenantOwnedModel):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    manifest = models.ForeignKey(Manifest, on_delete=models.PROTECT, related_name="tags")
    last_pushed_at = models.DateTimeField()
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    # An immutable tag never moves to another manifest and retention never deletes it.
    immutable = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_repository_name")]
        # A repository's last push (the API's repository list) is one probe of this index, not a scan of its tags.
        indexes = [models.Index(fields=["repository", "-last_pushed_at"], name="tag_repository_pushed_idx")]


class BlobUpload(TenantOwnedModel):
    """An upload session. Survives restarts: hash state, offset, parts and tail live here."""

    class State(models.TextChoices):
        ACTIVE = "active"
        DONE = "done"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="uploads")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    storage_key = models.CharField(max_length=512)
    multipart_id = models.CharField(max_length=1024, blank=True, default="")
    offset = models.BigIntegerField(default=0)
    # digests.ResumableHasher's state (the algorithms this session hashes); 104 bytes: a pre-0012 raw SHA-256 state.
    hash_state = models.BinaryField()
    # [[part_number, etag, size], ...] of parts already in S3.
    parts = models.JSONField(default=list)
    # Bytes received but not yet in a part (fewer than S3's 5 MiB minimum part size): here when
    # small, else in the object `tail_key` (decisions/0012). `tail_size` counts them either way.
    tail = models.BinaryField(default=b"")
    tail_key = models.CharField(max_length=512, blank=True, default="")
    tail_size = models.BigIntegerField(default=0)
    # Some tail object was ever written: the sweep lists the session's tail prefix when it ends.
    tail_spilled = models.BooleanField(default=False)
    # A heartbeat for the stale-upload sweep while a request streams; exclusion is locks.upload_lease.
    leased_until = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "state"], name="blobupload_tenant_state")]

    @property
    def range(self) -> str:
        """The `Range` header value for the bytes received so far ("0-0" before any)."""
        return f"0-{max(self.offset - 1, 0)}"


class EventBatch(models.Model):
    """One batch of the registry's event stream, delivered to its subscribers (services/stream.py).

    Its id is the batch id of the Redis processing list: a batch replayed after its
    acknowledgement was lost finds its row and is not delivered twice.
    """

    id = models.UUIDField(primary_key=True)
    events = models.PositiveIntegerField()
    flushed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"event batch {self.pk} ({self.events} events)"


class UsageEvent(TenantOwnedModel):
    """One push or pull of a blob or manifest, stored by the usage meter (services/usage.py) from the event stream.

    History, not state: the repository is kept by name (it may be deleted later) and the
    row is never updated. `(batch, seq)` says where in which flushed batch the event came
    from; it is unique, so replaying a batch whose acknowledgement was lost inserts nothing twice.
    """

    class Kind(models.TextChoices):
        BLOB = "blob"
        MANIFEST = "manifest"

    class Direction(models.TextChoices):
        PUSH = "push"
        PULL = "pull"

    class Mode(models.TextChoices):
        PROXIED = "proxied"
        REDIRECT = "redirect"

    repository_name = models.CharField(max_length=255)
    digest = models.CharField(max_length=135)
    bytes = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    direction = models.CharField(max_length=4, choices=Direction.choices)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PROXIED)
    # The tag or digest the client asked for (manifests); empty for blobs.
    reference = models.CharField(max_length=255, blank=True, default="")
    occurred_at = models.DateTimeField()
    batch = models.UUIDField()
    seq = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "seq"], name="usageevent_unique_batch_seq")]
        indexes = [
            models.Index(fields=["tenant", "occurred_at"], name="usageevent_tenant_time_idx"),
            # The usage API's per-day pull figures (usage_selectors.py) as an index-only scan (decisions/0027).
            models.Index(
                fields=["tenant", "occurred_at"],
                include=["repository_name", "bytes", "kind"],
                condition=models.Q(direction="pull"),
                name="usageevent_pulls_idx",
            ),
        ]


class JobRun(models.Model):
    """One run of a background job (GC, retention, upload sweep, audit, replication): what it did.

    The dashboard and the admin API show these; a run left `running` by a killed worker is
    recognisable by its heartbeat and is superseded by the next run.
    """

    class State(models.TextChoices):
        QUEUED = "queued"  # started through the API, its task not yet picked up by a worker
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=32, db_index=True)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    heartbeat_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    bytes_freed = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")
    # What the run concerns within its tenant (the repository a repository_delete empties); empty: the whole tenant.
    target = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["kind", "tenant", "started_at"], name="jobrun_kind_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} ({self.state})"


class RetentionPolicy(TenantOwnedModel):
    """Which tags retention deletes, for one repository or (repository null) the whole tenant.

    The repository's own policy wins over the tenant's. A tag is deleted when it is not
    immutable, not among the `keep_last` most recently pushed tags of its repository, fully
    matches `delete_regex` (empty: every tag), does not fully match `keep_regex` (empty: no
    exemption) and was last pushed more than `older_than_days` ago (null: any age). A policy
    with none of those four set deletes no tag. `untagged_days` makes GC keep untagged
    manifests (and what they reference) for that many days after their push.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    enabled = models.BooleanField(default=True)
    keep_last = models.PositiveIntegerField(null=True, blank=True)
    older_than_days = models.PositiveIntegerField(null=True, blank=True)
    delete_regex = models.CharField(max_length=255, blank=True, default="")
    keep_regex = models.CharField(max_length=255, blank=True, default="")
    untagged_days = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "repository"],
                name="retentionpolicy_unique_repository",
                condition=models.Q(repository__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["tenant"], name="retentionpolicy_unique_tenant", condition=models.Q(repository__isnull=True)
            ),
        ]


class ObjectDeletion(TenantOwnedModel):
    """An object whose database row is gone and whose bytes are still to be deleted from the bucket.

    Written in the same transaction that deletes the row (GC, retention, the upload sweep), so a
    worker killed between that COMMIT and the DeleteObjects call leaves a record, not an
    orphan; the drain deletes the object after one more check that nothing uses the key again.
    """

    class Kind(models.TextChoices):
        DATA = "data"  # a blob's bytes (an upload session's key)
        INDEX = "index"  # a blob's {digest, size, key} index object
        MANIFEST = "manifest"  # a manifest's exact bytes in one repository
        TAG = "tag"  # a tag's {tag, digest} object

    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=512)
    # What the key stands for, for the re-check: repository name and digest or tag name.
    repository_name = models.CharField(max_length=255, blank=True, default="")
    reference = models.CharField(max_length=255, blank=True, default="")
    # What Storj bills for the object (copied to DeletedObject when the drain deletes it); null: not known, not ledgered.
    size = models.BigIntegerField(null=True, blank=True)
    stored_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="objectdeletion_tenant_idx")]


class DeletedObject(TenantOwnedModel):
    """An object the drain deleted from the bucket: what Storj billed it for (docs/decisions/0052).

    Written by the drain in the transaction that follows its DeleteObjects and drops the
    ObjectDeletion records, so a killed drain leaves the records and its retry writes the
    ledger rows once; one row per object version (tenant, key, stored_since), so a key
    recorded twice is ledgered once. Kept for two full calendar months after the deletion (GC
    prunes older rows): the cost of a period needs the objects deleted in it or after it.
    """

    kind = models.CharField(max_length=8, choices=ObjectDeletion.Kind.choices)
    key = models.CharField(max_length=512)
    size = models.BigIntegerField()
    stored_since = models.DateTimeField()  # when the object was written
    deleted_at = models.DateTimeField()  # when DeleteObjects removed it: Storj stops storing it then

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key", "stored_since"], name="deletedobject_unique_version")]
        indexes = [models.Index(fields=["tenant", "deleted_at"], name="deletedobject_tenant_deleted")]


class ImmutableTagRule(TenantOwnedModel):
    """Tags that are immutable by name: every tag fully matching `tag_pattern` in a repository matching `repository_pattern`.

    Patterns are fnmatch patterns (case-sensitive, `*` crosses `/`), as a token's repository
    patterns are; an empty `repository_pattern` means every repository of the tenant. A matching
    tag is treated like one with `Tag.immutable` set: a push never moves it, and neither DELETE
    nor retention deletes it (services/immutability.py).
    """

    repository_pattern = models.CharField(max_length=255, blank=True, default="")
    tag_pattern = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "repository_pattern", "tag_pattern"], name="immutabletagrule_unique_patterns"
            )
        ]

    def __str__(self) -> str:
        return f"immutable-tag rule {self.pk} ({self.repository_pattern or '*'}:{self.tag_pattern})"


class StorageSnapshot(TenantOwnedModel):
    """What a tenant stored on one UTC day, as `usage_selectors.usage_storage_get` counted it (services/usage_snapshots.py).

    Taken daily by the beat task `gateway.usage.snapshot_all`: the registry keeps no other history
    of stored bytes (UsageEvent records pushes and pulls, not deletions), so the dashboard's storage
    charts show these days and nothing invented for the days before the first snapshot. Re-taking a
    day replaces its figures (one row per tenant and day).
    """

    day = models.DateField()
    stored_bytes = models.BigIntegerField()
    manifest_bytes = models.BigIntegerField()
    unique_bytes = models.BigIntegerField()
    shared_bytes = models.BigIntegerField()
    unreferenced_bytes = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="storagesnapshot_unique_tenant_day")]

    def __str__(self) -> str:
        return f"storage snapshot of tenant {self.tenant_id} on {self.day}"
