"""Reads: replication lag and health per tenant, integrity state per tenant, recent runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Tenant
from gateway.registry.models import Blob, JobRun, Manifest
from gateway.replication.conf import app_settings
from gateway.replication.models import ObjectAudit, ObjectKind, ObjectReplica, StorageTarget, TenantReplication


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# The same shape as a configured tenant's status, so every reader can rely on every key.
_NOT_CONFIGURED: dict[str, Any] = {
    "enabled": False,
    "target": None,
    "health": "not_configured",
    "objects": dict.fromkeys(("replicated", "pending", "failed", "mismatch", "not_yet_queued"), 0),
    "replicated_bytes": 0,
    "lag_seconds": 0.0,
    "oldest_unreplicated_since": None,
    "last_replicated_at": None,
    "oldest_verified_at": None,
    "last_error": None,
    "last_error_at": None,
}


def _unseen(config: TenantReplication) -> tuple[int, datetime | None]:
    """Objects of the tenant with no replica row on its target yet (not even queued): count and oldest."""
    has_row = ObjectReplica.objects.filter(target_id=config.target_id, tenant_id=config.tenant_id, digest=OuterRef("digest"))
    blobs = Blob.objects.filter(tenant_id=config.tenant_id).filter(~Exists(has_row.filter(kind=ObjectKind.BLOB)))
    manifests = Manifest.objects.filter(tenant_id=config.tenant_id).filter(~Exists(has_row.filter(kind=ObjectKind.MANIFEST)))
    b = blobs.aggregate(n=Count("pk"), oldest=Min("created_at"))
    m = manifests.aggregate(n=Count("digest", distinct=True), oldest=Min("created_at"))
    oldest = min((d for d in (b["oldest"], m["oldest"]) if d), default=None)
    return b["n"] + m["n"], oldest


def replication_status_get(*, tenant: Tenant) -> dict[str, Any]:
    """Replication lag and health of one tenant: counts per state, oldest unreplicated object, last copy."""
    config = TenantReplication.objects.filter(tenant=tenant).select_related("target").first()
    if config is None:
        return {**_NOT_CONFIGURED, "tenant": tenant.slug, "objects": dict.fromkeys(_NOT_CONFIGURED["objects"], 0)}
    rows = ObjectReplica.objects.filter(tenant=tenant, target_id=config.target_id)
    agg = rows.aggregate(
        replicated=Count("pk", filter=Q(state=ObjectReplica.State.REPLICATED)),
        pending=Count("pk", filter=Q(state=ObjectReplica.State.PENDING)),
        failed=Count("pk", filter=Q(state=ObjectReplica.State.FAILED)),
        mismatch=Count("pk", filter=Q(state=ObjectReplica.State.MISMATCH)),
        oldest_pending=Min("pending_since", filter=~Q(state=ObjectReplica.State.REPLICATED)),
        last_replicated_at=Max("replicated_at"),
        oldest_verified_at=Min("verified_at", filter=Q(state=ObjectReplica.State.REPLICATED)),
        replicated_bytes=Sum("size", filter=Q(state=ObjectReplica.State.REPLICATED)),
    )
    last_failure = rows.exclude(last_error="").order_by("-updated_at", "-pk").values("last_error", "updated_at").first()
    unseen, unseen_oldest = _unseen(config)
    oldest = min((d for d in (agg["oldest_pending"], unseen_oldest) if d), default=None)
    now = timezone.now()
    lag = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    enabled = config.enabled and config.target.enabled
    waiting = agg["pending"] + unseen
    if not enabled:
        health = "disabled"
    elif agg["failed"] or agg["mismatch"]:
        health = "failing"
    elif lag > app_settings.replication_lag_alert.total_seconds():
        health = "lagging"
    else:
        health = "ok"
    return {
        "tenant": tenant.slug,
        "enabled": enabled,
        "target": config.target.name,
        "health": health,
        "objects": {
            "replicated": agg["replicated"],
            "pending": waiting,
            "failed": agg["failed"],
            "mismatch": agg["mismatch"],
            "not_yet_queued": unseen,
        },
        "replicated_bytes": agg["replicated_bytes"] or 0,
        "lag_seconds": round(lag, 3),
        "oldest_unreplicated_since": _iso(oldest),
        "last_replicated_at": _iso(agg["last_replicated_at"]),
        "oldest_verified_at": _iso(agg["oldest_verified_at"]),
        "last_error": last_failure["last_error"] if last_failure else None,
        "last_error_at": _iso(last_failure["updated_at"]) if last_failure else None,
    }


def integrity_status_get(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant's audit state: objects per status, flagged, least recently checked, last problem."""
    rows = ObjectAudit.objects.filter(tenant=tenant)
    per_status = dict(rows.values_list("status").annotate(n=Count("pk")).order_by("status"))
    agg = rows.aggregate(
        flagged=Count("pk", filter=Q(flagged=True)),
        oldest_check=Min("last_checked_at"),
        never_checked=Count("pk", filter=Q(last_checked_at__isnull=True)),
        last_problem_at=Max("last_problem_at"),
    )
    objects = Blob.objects.filter(tenant=tenant).count() + Manifest.objects.filter(tenant=tenant).count()
    return {
        "tenant": tenant.slug,
        "objects": objects,
        "audited": sum(per_status.values()),
        "by_status": per_status,
        "flagged": agg["flagged"],
        "never_checked": agg["never_checked"] + max(0, objects - sum(per_status.values())),
        "oldest_check_at": _iso(agg["oldest_check"]),
        "last_problem_at": _iso(agg["last_problem_at"]),
    }


def replication_status_list(*, tenant: Tenant | None = None) -> list[dict[str, Any]]:
    """Replication and integrity figures for one tenant, or for every tenant that replicates or has audit state."""
    if tenant is not None:
        tenants = [tenant]
    else:
        ids = set(TenantReplication.objects.values_list("tenant_id", flat=True)) | set(
            ObjectAudit.objects.values_list("tenant_id", flat=True).distinct()
        )
        tenants = list(Tenant.objects.filter(pk__in=ids).order_by("slug"))
    return [{**replication_status_get(tenant=t), "integrity": integrity_status_get(tenant=t)} for t in tenants]


def jobrun_list(*, kind: str, tenant: Tenant | None = None, limit: int = 20) -> list[JobRun]:
    """The most recent runs of a kind ("audit", "replication"), newest first; a tenant's own and global ones."""
    qs = JobRun.objects.filter(kind=kind)
    if tenant is not None:
        qs = qs.filter(Q(tenant=tenant) | Q(tenant__isnull=True))
    return list(qs.order_by("-started_at", "-pk")[:limit])


def storage_target_list(*, tenant: Tenant | None) -> QuerySet[StorageTarget]:
    """The platform targets (tenant None) or `tenant`'s own targets; the caller orders them."""
    return StorageTarget.objects.filter(tenant=tenant)


def tenant_replication_get(*, tenant: Tenant) -> TenantReplication | None:
    """The tenant's replication settings (with their target), or None when it never opted in."""
    return TenantReplication.objects.filter(tenant=tenant).select_related("target").first()
