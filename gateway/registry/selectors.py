"""Tenant-scoped reads of the registry. Every query filters by tenant first."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    Expression,
    F,
    Field,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Concat

from accounts.models import Tenant
from accounts.principals import pattern_literal_prefix, repository_matches
from gateway.registry.media_types import MAX_TYPE_LENGTH
from gateway.registry.models import Blob, BlobUpload, ImmutableTagRule, JobRun, Manifest, Repository, RetentionPolicy, Tag

# The two lookups every pull makes are written as raw SQL: the ORM's query compilation was a
# third of a manifest GET's time (bench/README.md). Same columns, same tenant scoping.
_REPOSITORY_COLUMNS = ["id", "created_at", "updated_at", "tenant_id", "name", "visibility", "description"]
_REPOSITORY_SQL = f"SELECT {', '.join(_REPOSITORY_COLUMNS)} FROM registry_repository WHERE tenant_id = %s AND name = %s LIMIT 1"
_MANIFEST_COLUMNS = [
    "id", "created_at", "updated_at", "tenant_id", "repository_id", "digest", "media_type", "size", "payload",
    "artifact_type", "subject_digest", "annotations", "last_pulled_at", "gc_candidate_since",
]  # fmt: skip
_MANIFEST_FIELDS = ", ".join(f"m.{column}" for column in _MANIFEST_COLUMNS)
_ANNOTATIONS = _MANIFEST_COLUMNS.index("annotations")
_annotations_field = Manifest._meta.get_field("annotations")
_MANIFEST_BY_TAG_SQL = (
    f"SELECT {_MANIFEST_FIELDS} FROM registry_tag t JOIN registry_manifest m ON m.id = t.manifest_id"
    " WHERE t.tenant_id = %s AND t.repository_id = %s AND t.name = %s LIMIT 1"
)
_MANIFEST_BY_DIGEST_SQL = f"SELECT {_MANIFEST_FIELDS} FROM registry_manifest m WHERE m.tenant_id = %s AND m.repository_id = %s AND m.digest = %s LIMIT 1"


CATALOG_BATCH = 500  # rows read per query while filling a catalog page


def repository_get(*, tenant: Tenant, name: str) -> Repository | None:
    """The tenant's repository with this name, or None (deleted_name deferred)."""
    with connection.cursor() as cursor:  # not Repository.objects.raw(): its per-query setup cost more than the query
        cursor.execute(_REPOSITORY_SQL, [tenant.pk, name])
        row = cursor.fetchone()
    return None if row is None else Repository.from_db(connection.alias, _REPOSITORY_COLUMNS, row)


def catalog_list(
    *, tenant_ids: list[int], with_slug: bool, last: str | None, n: int | None, patterns: tuple[str, ...] = ()
) -> list[str]:
    """Repository names of these tenants in lexical order (`slug/name` when with_slug), n+1 at most.

    With `patterns` (a token's or robot's fnmatch patterns, applied to the name within the
    tenant) only matching names are listed: the database narrows by each pattern's literal
    prefix, `repository_matches` decides, and pages are filled by reading on past non-matches.
    """
    qs = Repository.objects.filter(tenant_id__in=tenant_ids, deleted_name="")  # a repository being deleted is gone already
    full = Concat("tenant__slug", Value("/"), "name", output_field=CharField()) if with_slug else F("name")
    qs = qs.annotate(full=full).order_by("full")
    if patterns:
        prefixes = {pattern_literal_prefix(p) for p in patterns}
        if "" not in prefixes:
            narrow = Q()
            for prefix in prefixes:
                narrow |= Q(name__startswith=prefix)
            qs = qs.filter(narrow)
    want = None if n is None else n + 1
    batch = max(want or 0, CATALOG_BATCH)
    names: list[str] = []
    while want is None or len(names) < want:
        page = list((qs.filter(full__gt=last) if last else qs).values_list("full", "name")[:batch])
        names += [full_name for full_name, name in page if repository_matches(patterns, name)]
        if len(page) < batch:
            break
        last = page[-1][0]
    return names if want is None else names[:want]


def blob_get_linked(*, tenant: Tenant, repository: Repository, digest: str) -> Blob | None:
    """The blob with this digest, only if it is linked into this repository."""
    return (
        Blob.objects.filter(tenant=tenant, digest=digest, repository_links__repository=repository)
        .only("id", "digest", "size", "storage_key")
        .first()
    )


def blob_get(*, tenant: Tenant, digest: str) -> Blob | None:
    return Blob.objects.filter(tenant=tenant, digest=digest).first()


def manifest_get(*, tenant: Tenant, repository: Repository, reference: str) -> Manifest | None:
    """A manifest of this repository by digest, or by tag (one query either way)."""
    sql = _MANIFEST_BY_DIGEST_SQL if ":" in reference else _MANIFEST_BY_TAG_SQL
    with connection.cursor() as cursor:  # not Manifest.objects.raw(): its setup was 3/4 of this lookup's CPU (decision 0047)
        cursor.execute(sql, [tenant.pk, repository.pk, reference])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    # jsonb arrives as text; the field parses it as the ORM would (no expression: the whole column).
    values[_ANNOTATIONS] = _annotations_field.from_db_value(values[_ANNOTATIONS], None, connection)  # type: ignore[arg-type]
    return Manifest.from_db(connection.alias, _MANIFEST_COLUMNS, values)


def tag_list(*, tenant: Tenant, repository: Repository, last: str | None, n: int | None) -> list[str]:
    """Tag names after `last` in lexical order, n+1 at most (`last` must hold no NUL: PostgreSQL cannot compare with one)."""
    qs = Tag.objects.filter(tenant=tenant, repository=repository).order_by("name").values_list("name", flat=True)
    if last:
        qs = qs.filter(name__gt=last)
    if n is not None:
        qs = qs[: n + 1]
    return list(qs)


def referrers_list(*, tenant: Tenant, repository: Repository, digest: str, artifact_type: str | None) -> list[Manifest]:
    """Manifests whose subject is `digest`, oldest first, of one artifactType if given."""
    if artifact_type and ("\x00" in artifact_type or len(artifact_type) > MAX_TYPE_LENGTH):
        return []  # no manifest can have it (parse_manifest refuses them), and PostgreSQL cannot compare with a NUL
    qs = Manifest.objects.filter(tenant=tenant, repository=repository, subject_digest=digest).order_by("created_at", "pk")
    if artifact_type:
        qs = qs.filter(artifact_type=artifact_type)
    return list(qs.only("digest", "media_type", "size", "artifact_type", "annotations"))


def upload_get(*, tenant: Tenant, repository: Repository, upload_id) -> BlobUpload | None:
    return BlobUpload.objects.filter(tenant=tenant, repository=repository, pk=upload_id, state=BlobUpload.State.ACTIVE).first()


def usage_bytes(*, tenant: Tenant) -> int:
    """Bytes stored for the tenant: its blobs (each stored once) and manifests."""
    blobs = Blob.objects.filter(tenant=tenant).aggregate(s=Sum("size"))["s"] or 0
    manifests = Manifest.objects.filter(tenant=tenant).aggregate(s=Sum("size"))["s"] or 0
    return int(blobs) + int(manifests)


def _patterns_q(patterns: tuple[str, ...]) -> Q:
    """A filter on `name` matching any of a token's fnmatch patterns (`*` crosses `/`, as in repository_matches)."""
    narrow = Q()
    for pattern in patterns:
        regex, i = "", 0
        while i < len(pattern):
            char = pattern[i]
            if char == "*":
                regex += ".*"
            elif char == "?":
                regex += "."
            elif char == "[" and "]" in pattern[i + 2 :]:
                end = pattern.index("]", i + 2)
                body = pattern[i + 1 : end]
                regex += "[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]"
                i = end
            else:
                regex += re.escape(char)
            i += 1
        narrow |= Q(name__regex=f"^{regex}$")
    return narrow


def repository_list(
    *, tenant: Tenant, prefix: str = "", visibility: str | None = None, patterns: tuple[str, ...] = ()
) -> QuerySet[Repository]:
    """The tenant's repositories (only those `patterns` allow, if any), with `tag_count` and `last_pushed_at` annotated.

    `pushed_or_created` (the last push, or the creation of a repository with no tag) is never
    null, so a cursor can sort by it.
    """
    # Per row of the page only (the outer query is tenant-scoped; its pk ties these to it). The last
    # push is the newest tag by the (repository, last_pushed_at) index, one index probe however many
    # tags a repository has; the count an index-only scan (bench/api.py, docs/decisions/0028).
    tags = Tag.objects.filter(repository=OuterRef("pk")).order_by()
    qs = (
        Repository.objects.filter(tenant=tenant, deleted_name="")
        .annotate(
            tag_count=Coalesce(Subquery(tags.values("repository").annotate(c=Count("pk")).values("c")), 0),
            last_pushed_at=Subquery(tags.order_by("-last_pushed_at").values("last_pushed_at")[:1]),
        )
        .annotate(pushed_or_created=Coalesce(F("last_pushed_at"), F("created_at")))
    )
    if prefix:
        qs = qs.filter(name__startswith=prefix)
    if visibility:
        qs = qs.filter(visibility=visibility)
    if patterns:
        qs = qs.filter(_patterns_q(patterns))
    return qs


class _PerRepository(Expression):
    """A correlated subquery of the outer query's repository row, as SQL: the same plan as the ORM's Subquery, a
    fraction of its building and compiling (a list page built and compiled two Subqueries per request)."""

    def __init__(self, sql: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.sql = sql

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[()]]:
        outer = compiler.quote_name_unless_alias(compiler.query.base_table)
        return self.sql.format(repository=f'{outer}."id"'), ()


# repository_list's tag_count and last_pushed_at: the count an index-only scan, the last push one probe of the
# (repository, -last_pushed_at) index.
_TAG_COUNT_SQL = "(SELECT COUNT(*) FROM registry_tag WHERE registry_tag.repository_id = {repository})"
_LAST_PUSH_SQL = (
    "(SELECT registry_tag.last_pushed_at FROM registry_tag WHERE registry_tag.repository_id = {repository}"
    " ORDER BY registry_tag.last_pushed_at DESC LIMIT 1)"
)
# The columns the API's repository list shows (and its cursor orders by): rows, not model instances.
REPOSITORY_ROW_FIELDS = ("name", "visibility", "description", "tag_count", "last_pushed_at", "created_at")


def repository_rows(*, tenant: Tenant, patterns: tuple[str, ...] = ()) -> QuerySet[Repository, dict[str, Any]]:
    """The rows of repository_list() (same repositories, `tag_count`, `last_pushed_at`) as `.values()` of REPOSITORY_ROW_FIELDS."""
    qs = Repository.objects.filter(tenant_id=tenant.pk, deleted_name="").annotate(
        tag_count=_PerRepository(_TAG_COUNT_SQL, IntegerField()), last_pushed_at=_PerRepository(_LAST_PUSH_SQL, DateTimeField())
    )
    if patterns:
        qs = qs.filter(_patterns_q(patterns))
    return qs.values(*REPOSITORY_ROW_FIELDS)


def repository_stats(*, tenant: Tenant, repository: Repository) -> dict[str, Any]:
    """A repository's tag count, stored bytes (its manifests and linked blobs) and last push and pull."""
    tags = Tag.objects.filter(tenant=tenant, repository=repository).aggregate(
        tag_count=Count("pk"), last_pushed_at=Max("last_pushed_at"), last_tag_pull=Max("last_pulled_at")
    )
    manifests = Manifest.objects.filter(tenant=tenant, repository=repository).aggregate(
        size=Sum("size"), last_pulled_at=Max("last_pulled_at")
    )
    blobs = Blob.objects.filter(tenant=tenant, repository_links__repository=repository).aggregate(size=Sum("size"))
    pulls = [t for t in (tags["last_tag_pull"], manifests["last_pulled_at"]) if t is not None]
    return {
        "tag_count": tags["tag_count"],
        "stored_bytes": int(manifests["size"] or 0) + int(blobs["size"] or 0),
        "last_pushed_at": tags["last_pushed_at"],
        "last_pulled_at": max(pulls) if pulls else None,
    }


def tag_list_detailed(*, tenant: Tenant, repository: Repository) -> QuerySet[Tag]:
    """The repository's tags with their manifests (for listing them with digest, type and size)."""
    # Not the manifests' bytes (up to 4 MiB each): a page of 100 tags needs only digest, type and size.
    return Tag.objects.filter(tenant=tenant, repository=repository).select_related("manifest").defer("manifest__payload")


TAG_ROW_FIELDS = (
    "name",
    "manifest__digest",
    "manifest__media_type",
    "manifest__size",
    "last_pushed_at",
    "last_pulled_at",
    "immutable",
)


def tag_rows(*, tenant: Tenant, repository: Repository) -> QuerySet[Tag, dict[str, Any]]:
    """The repository's tags as `.values()` rows of TAG_ROW_FIELDS (the manifest's digest, type and size joined in)."""
    return Tag.objects.filter(tenant_id=tenant.pk, repository_id=repository.pk).values(*TAG_ROW_FIELDS)


def tag_get(*, tenant: Tenant, repository: Repository, name: str) -> Tag | None:
    """One tag of the repository with its manifest, or None."""
    return tag_list_detailed(tenant=tenant, repository=repository).filter(name=name).first()


def immutable_rule_list(*, tenant: Tenant) -> QuerySet[ImmutableTagRule]:
    """The tenant's immutable-tag rules."""
    return ImmutableTagRule.objects.filter(tenant=tenant)


def immutable_rule_get(*, tenant: Tenant, rule_id: int) -> ImmutableTagRule | None:
    return immutable_rule_list(tenant=tenant).filter(pk=rule_id).first()


def retention_policy_list(*, tenant: Tenant) -> QuerySet[RetentionPolicy]:
    """The tenant's retention policies (the tenant-wide one has no repository), with their repositories."""
    return RetentionPolicy.objects.filter(tenant=tenant).select_related("repository")


def retention_policy_get(*, tenant: Tenant, policy_id: int) -> RetentionPolicy | None:
    return retention_policy_list(tenant=tenant).filter(pk=policy_id).first()


def jobrun_list(*, tenant: Tenant | None) -> QuerySet[JobRun]:
    """The runs of the tenant's background jobs (with `tenant` None: of every tenant and of none, for staff), with their tenant."""
    qs = JobRun.objects.select_related("tenant")
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    return qs


def jobrun_get(*, tenant: Tenant, run_id: int) -> JobRun | None:
    """One run of the tenant's jobs, or None (runs of other tenants are not found)."""
    return jobrun_list(tenant=tenant).filter(pk=run_id).first()
