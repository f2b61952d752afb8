"""The billing meter (docs/decisions/0041): stream events folded into hourly UsageRecord rows, and hourly storage samples.

Exactly once comes from the registry's stream (decision 0014): `usage_records_fold` runs inside
the flush's transaction, after the EventBatch row, so a replayed batch is delivered to nobody and a
failed one rolls back with every other subscriber's work. The fold itself only adds (INSERT ...
ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x), one statement per batch, rows in (tenant, hour,
repository) order, the same order the sampler locks them in, so the two never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction

from accounts.models import Tenant
from billing.models import UsageRecord
from billing.models.usage import TENANT_TOTAL
from gateway.registry.media_types import INDEX_TYPES
from gateway.registry.services.events import Event
from gateway.registry.usage_selectors import usage_storage_get

# What the meter receives: pulls of blobs and manifests (pushes are stored, and sampled hourly).
TYPES = frozenset({("blob", "pull"), ("manifest", "pull")})
_TABLE = UsageRecord._meta.db_table
_KEY = "(tenant_id, repository, hour)"
# Rows per INSERT: 6 parameters each, under PostgreSQL's 65,535 per statement (a batch holds up to 50,000 events).
FOLD_ROWS = 5000


@dataclass
class _Traffic:
    pulls: int = 0
    proxied: int = 0
    redirect: int = 0


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour that holds `moment` (an aware datetime)."""
    if moment.tzinfo is None:
        raise ValueError("hour_of needs an aware datetime")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _traffic(events: Sequence[Event]) -> dict[tuple[int, datetime, str], _Traffic]:
    totals: dict[tuple[int, datetime, str], _Traffic] = {}
    for e in events:
        if e.direction != "pull":
            continue
        figures = totals.setdefault((e.tenant_id, hour_of(e.occurred_at), e.repository), _Traffic())
        if e.kind == "manifest":
            figures.pulls += e.media_type not in INDEX_TYPES
            figures.proxied += e.size  # a manifest is always sent by Wharf itself
        elif e.mode == "redirect":
            figures.redirect += e.size
        else:
            figures.proxied += e.size
    return totals


def usage_records_fold(*, batch: uuid.UUID, events: Sequence[Event]) -> None:
    """Add a batch's pulls and egress to the hourly UsageRecord rows; the stream subscriber (runs in the flush's transaction)."""
    totals = _traffic(events)
    if not totals:
        return
    rows = [(t, repository, hour, f.pulls, f.proxied, f.redirect) for (t, hour, repository), f in sorted(totals.items())]
    with connection.cursor() as cursor:
        for i in range(0, len(rows), FOLD_ROWS):
            chunk = rows[i : i + FOLD_ROWS]
            cursor.execute(_fold_sql(len(chunk)), [value for row in chunk for value in row])


def _fold_sql(rows: int) -> str:
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, 0, now(), now())"] * rows)
    return f"""
        INSERT INTO {_TABLE} (tenant_id, repository, hour, pulls, egress_proxied_bytes, egress_redirect_bytes,
                              storage_byte_hours, created_at, updated_at)
        VALUES {values}
        ON CONFLICT {_KEY} DO UPDATE SET
            pulls = {_TABLE}.pulls + EXCLUDED.pulls,
            egress_proxied_bytes = {_TABLE}.egress_proxied_bytes + EXCLUDED.egress_proxied_bytes,
            egress_redirect_bytes = {_TABLE}.egress_redirect_bytes + EXCLUDED.egress_redirect_bytes,
            updated_at = now()
    """


_SAMPLE_SQL = f"""
    INSERT INTO {_TABLE} (tenant_id, repository, hour, pulls, egress_proxied_bytes, egress_redirect_bytes,
                          storage_byte_hours, storage_sampled_at, created_at, updated_at)
    VALUES (%s, %s, %s, 0, 0, 0, %s, %s, now(), now())
    ON CONFLICT {_KEY} DO UPDATE SET
        storage_byte_hours = EXCLUDED.storage_byte_hours, storage_sampled_at = EXCLUDED.storage_sampled_at, updated_at = now()
    WHERE {_TABLE}.storage_sampled_at IS NULL
    RETURNING id
"""


def usage_storage_sample(*, tenant: Tenant, hour: datetime | None = None) -> bool:
    """Record the tenant's stored bytes as `hour`'s storage byte-hours (default: this hour); once per (tenant, hour).

    False (nothing written) when the hour is already sampled: a retry, or a concurrent run, which
    waits on the first one's tenant row and then finds it sampled. The tenant-wide row is claimed
    first and the repositories follow in name order (the fold's lock order).
    """
    now = datetime.now(UTC)
    hour = hour_of(hour or now)
    figures = usage_storage_get(tenant=tenant)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SAMPLE_SQL, [tenant.pk, TENANT_TOTAL, hour, figures["stored_bytes"], now])
        if cursor.fetchone() is None:
            return False
        for repository in figures["repositories"]:  # sorted by name, all after TENANT_TOTAL ("")
            cursor.execute(_SAMPLE_SQL, [tenant.pk, repository["name"], hour, repository["stored_bytes"], now])
    return True


def usage_storage_sample_by_id(*, tenant_id: int, hour: datetime | None = None) -> bool | None:
    """`usage_storage_sample` by tenant id; None (quietly) when the tenant is gone or being deleted."""
    tenant = Tenant.objects.filter(pk=tenant_id).exclude(status=Tenant.Status.DELETING).first()
    return usage_storage_sample(tenant=tenant, hour=hour) if tenant is not None else None
