"""A tenant's usage: what it stores now, and what it pulled per day (docs/decisions/0027).

Storage counts each blob once per tenant (a blob is stored once, whatever links it), by how
many repositories link it: `unique` (one), `shared` (more than one), `unreferenced` (none: an
unlinked blob that garbage collection has not reclaimed yet). Manifests belong to one repository
each. So `stored = manifests + unique + shared + unreferenced`, and per repository
`stored = manifests + linked blobs` (shared ones count in each repository that links them).

Traffic comes from the usage meter's UsageEvent rows (services/usage.py): egress is the bytes of
every pull (blobs and manifests, streamed or redirected to the bucket), pulls are manifest GETs
(what Docker Hub counts; a HEAD is neither). Days are UTC days. Each read is one SQL query that
aggregates in PostgreSQL, whatever the number of repositories or days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection

from accounts.models import Tenant
from gateway.registry.models import Blob, Manifest, Repository, RepositoryBlob, StorageSnapshot, UsageEvent

MAX_DAYS = 366

_BLOB, _LINK, _MANIFEST = Blob._meta.db_table, RepositoryBlob._meta.db_table, Manifest._meta.db_table
_REPOSITORY, _EVENT = Repository._meta.db_table, UsageEvent._meta.db_table

# One row per repository, and one more (name NULL, GROUPING 1) for the tenant.
_STORAGE_SQL = f"""
WITH links AS (
    SELECT b.id, b.size, count(rb.id) AS n
    FROM {_BLOB} b LEFT JOIN {_LINK} rb ON rb.blob_id = b.id AND rb.tenant_id = b.tenant_id
    WHERE b.tenant_id = %(tenant)s
    GROUP BY b.id
),
repository_blobs AS (
    SELECT rb.repository_id, sum(l.size) AS linked, sum(l.size) FILTER (WHERE l.n = 1) AS unique_
    FROM {_LINK} rb JOIN links l ON l.id = rb.blob_id
    WHERE rb.tenant_id = %(tenant)s
    GROUP BY rb.repository_id
),
repository_manifests AS (
    SELECT repository_id, sum(size) AS size FROM {_MANIFEST} WHERE tenant_id = %(tenant)s GROUP BY repository_id
)
SELECT r.name, coalesce(m.size, 0), coalesce(rb.linked, 0), coalesce(rb.unique_, 0), 0, 0
FROM {_REPOSITORY} r
LEFT JOIN repository_blobs rb ON rb.repository_id = r.id
LEFT JOIN repository_manifests m ON m.repository_id = r.id
WHERE r.tenant_id = %(tenant)s
UNION ALL
SELECT NULL,
    (SELECT coalesce(sum(size), 0) FROM {_MANIFEST} WHERE tenant_id = %(tenant)s),
    coalesce(sum(size), 0),
    coalesce(sum(size) FILTER (WHERE n = 1), 0),
    coalesce(sum(size) FILTER (WHERE n > 1), 0),
    coalesce(sum(size) FILTER (WHERE n = 0), 0)
FROM links
"""

# Pulls grouped by (day, repository), by day, by repository and in all; GROUPING() says which.
_TRAFFIC_SQL = f"""
SELECT day, repository_name, coalesce(sum(bytes), 0), count(*) FILTER (WHERE kind = %(manifest)s), GROUPING(day, repository_name)
FROM (
    SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC')::date AS day, repository_name, bytes, kind
    FROM {_EVENT}
    WHERE tenant_id = %(tenant)s AND direction = %(pull)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
) pulls
GROUP BY GROUPING SETS ((day, repository_name), (day), (repository_name), ())
"""


def usage_storage_get(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant's stored bytes now (manifest, unique, shared, unreferenced) and each repository's, by name; one query."""
    with connection.cursor() as cursor:
        cursor.execute(_STORAGE_SQL, {"tenant": tenant.pk})
        rows = cursor.fetchall()
    repositories = []
    total: dict[str, Any] = {}
    for name, manifests, linked, unique, shared, unreferenced in rows:
        if name is None:
            total = {
                "stored_bytes": int(manifests) + int(linked),
                "manifest_bytes": int(manifests),
                "unique_bytes": int(unique),
                "shared_bytes": int(shared),
                "unreferenced_bytes": int(unreferenced),
            }
        else:
            repositories.append(
                {
                    "name": name,
                    "stored_bytes": int(manifests) + int(linked),
                    "manifest_bytes": int(manifests),
                    "unique_bytes": int(unique),
                }
            )
    return {**total, "repositories": sorted(repositories, key=lambda r: r["name"])}


def usage_traffic_get(*, tenant: Tenant, since: date, until: date) -> dict[str, Any]:
    """Egress bytes and pulls from `since` to `until` (UTC days, both included, ≤ MAX_DAYS): in all, per day, per repository.

    Every day of the range is listed, with zeros where nothing was pulled; each day lists the
    repositories pulled from that day, by name. One query.
    """
    days = (until - since).days + 1
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"since..until must span 1 to {MAX_DAYS} days, got {days}.")
    start = datetime.combine(since, time.min, tzinfo=UTC)
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "pull": UsageEvent.Direction.PULL.value,
        "manifest": UsageEvent.Kind.MANIFEST.value,
        "start": start,
        "end": start + timedelta(days=days),
    }
    with connection.cursor() as cursor:
        cursor.execute(_TRAFFIC_SQL, params)
        rows = cursor.fetchall()
    per_day = {since + timedelta(days=i): {"date": since + timedelta(days=i), "egress_bytes": 0, "pulls": 0} for i in range(days)}
    day_repositories: dict[date, list[dict[str, Any]]] = {day: [] for day in per_day}
    repositories, total = [], {"egress_bytes": 0, "pulls": 0}
    for day, name, egress, pulls, grouping in rows:
        figures = {"egress_bytes": int(egress), "pulls": int(pulls)}
        if grouping == 0:
            day_repositories[day].append({"name": name, **figures})
        elif grouping == 1:
            per_day[day].update(figures)
        elif grouping == 2:
            repositories.append({"name": name, **figures})
        else:
            total = figures
    return {
        "since": since,
        "until": until,
        **total,
        "days": [{**per_day[day], "repositories": sorted(day_repositories[day], key=lambda r: r["name"])} for day in per_day],
        "repositories": sorted(repositories, key=lambda r: r["name"]),
    }


def usage_storage_history_list(*, tenant: Tenant, since: date, until: date) -> list[dict[str, Any]]:
    """The tenant's daily storage snapshots from `since` to `until` (UTC days, both included): one entry per day, oldest first.

    A day without a snapshot (before the first one, or a missed run) has `recorded` False and no
    figures: the registry keeps no other history of stored bytes, so nothing is filled in. One query.
    """
    days = (until - since).days + 1
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"since..until must span 1 to {MAX_DAYS} days, got {days}.")
    fields = ("stored_bytes", "manifest_bytes", "unique_bytes", "shared_bytes", "unreferenced_bytes")
    rows = StorageSnapshot.objects.filter(tenant=tenant, day__gte=since, day__lte=until).values_list("day", *fields)
    by_day: dict[date, dict[str, Any]] = {row[0]: dict(zip(fields, row[1:], strict=True)) for row in rows}
    history = []
    for i in range(days):
        day = since + timedelta(days=i)
        figures = by_day.get(day)
        history.append({"date": day, "recorded": figures is not None, **(figures or {})})
    return history
