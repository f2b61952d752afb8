"""GC's mark phase: set-based, a constant number of statements per tenant, no query per row (decisions/0007).

The live manifests are the closure of the roots (tagged manifests and manifests a retention
policy keeps for `untagged_days`) over index → child and subject → referrer edges; live blobs
are those a live manifest references. Every other manifest and blob gets
`gc_candidate_since = now` unless it has a mark already; live rows lose theirs. Rows a push
holds are skipped. The marks only implement the grace period; safety comes from the sweep's
locks and re-check.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import connection

from accounts.models import Tenant

_LIVE_MANIFESTS = """
INSERT INTO {table} (id)
WITH RECURSIVE
repo_policy AS (
    SELECT r.id AS repository_id,
           CASE WHEN rp.id IS NOT NULL THEN rp.enabled ELSE tp.enabled END AS enabled,
           CASE WHEN rp.id IS NOT NULL THEN rp.untagged_days ELSE tp.untagged_days END AS untagged_days
    FROM registry_repository r
    LEFT JOIN registry_retentionpolicy rp ON rp.repository_id = r.id
    LEFT JOIN registry_retentionpolicy tp ON tp.tenant_id = r.tenant_id AND tp.repository_id IS NULL
    WHERE r.tenant_id = %(tenant)s
),
roots AS (
    SELECT t.manifest_id AS id FROM registry_tag t WHERE t.tenant_id = %(tenant)s
    UNION
    SELECT m.id FROM registry_manifest m JOIN repo_policy p ON p.repository_id = m.repository_id
    WHERE m.tenant_id = %(tenant)s AND p.enabled AND p.untagged_days IS NOT NULL
      AND m.created_at > %(now)s - make_interval(days => p.untagged_days)
),
edges AS MATERIALIZED (
    SELECT mc.parent_id AS src, mc.child_id AS dst
    FROM registry_manifestchild mc JOIN registry_manifest p ON p.id = mc.parent_id
    WHERE p.tenant_id = %(tenant)s
    UNION ALL
    SELECT s.id, r.id
    FROM registry_manifest r JOIN registry_manifest s ON s.repository_id = r.repository_id AND s.digest = r.subject_digest
    WHERE r.tenant_id = %(tenant)s AND r.subject_digest <> ''
),
live(id) AS (
    SELECT id FROM roots
    UNION
    SELECT e.dst FROM edges e JOIN live l ON e.src = l.id
)
SELECT id FROM live
"""

# Rows a push holds are skipped (SKIP LOCKED): GC never waits for a push here, nor deadlocks with one.
_MARK_STATEMENTS = {
    "manifests_unmarked": """
UPDATE registry_manifest SET gc_candidate_since = NULL WHERE id IN (
    SELECT m.id FROM registry_manifest m JOIN {table} l ON l.id = m.id
    WHERE m.tenant_id = %(tenant)s AND m.gc_candidate_since IS NOT NULL
    FOR NO KEY UPDATE OF m SKIP LOCKED)""",
    "manifests_marked": """
UPDATE registry_manifest SET gc_candidate_since = %(now)s WHERE id IN (
    SELECT m.id FROM registry_manifest m
    WHERE m.tenant_id = %(tenant)s AND m.gc_candidate_since IS NULL AND NOT EXISTS (SELECT 1 FROM {table} l WHERE l.id = m.id)
    FOR NO KEY UPDATE OF m SKIP LOCKED)""",
    "blobs_unmarked": """
UPDATE registry_blob SET gc_candidate_since = NULL WHERE id IN (
    SELECT b.id FROM registry_blob b
    WHERE b.tenant_id = %(tenant)s AND b.gc_candidate_since IS NOT NULL
      AND EXISTS (SELECT 1 FROM registry_manifestblob mb JOIN {table} l ON l.id = mb.manifest_id WHERE mb.blob_id = b.id)
    FOR NO KEY UPDATE OF b SKIP LOCKED)""",
    "blobs_marked": """
UPDATE registry_blob SET gc_candidate_since = %(now)s WHERE id IN (
    SELECT b.id FROM registry_blob b
    WHERE b.tenant_id = %(tenant)s AND b.gc_candidate_since IS NULL
      AND NOT EXISTS (SELECT 1 FROM registry_manifestblob mb JOIN {table} l ON l.id = mb.manifest_id WHERE mb.blob_id = b.id)
    FOR NO KEY UPDATE OF b SKIP LOCKED)""",
}


def gc_mark(*, tenant: Tenant, now: datetime) -> dict[str, int]:
    """Mark the tenant's unreachable manifests and blobs (candidate since `now` unless marked), unmark reachable ones; set-based, 8 statements."""
    table = f"gc_live_{uuid.uuid4().hex[:12]}"
    params: dict[str, Any] = {"tenant": tenant.pk, "now": now}
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {table} (id bigint PRIMARY KEY)")
        try:
            cursor.execute(_LIVE_MANIFESTS.format(table=table), params)
            counts["manifests_live"] = cursor.rowcount
            cursor.execute(f"ANALYZE {table}")
            for name, sql in _MARK_STATEMENTS.items():
                cursor.execute(sql.format(table=table), params)
                counts[name] = cursor.rowcount
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return counts
