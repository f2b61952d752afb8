"""What a tenant's data costs at Storj (docs/decisions/0048): Storj's own rules applied to the objects Wharf keeps for it.

Storj bills per project, and tenants share the platform's bucket, so Wharf works out each
tenant's share itself from what it knows of every object under the tenant's prefix:

- blob data (a `Blob` row: its size, stored since `created_at`), the blob's index object
  ({digest, key, size}, its exact JSON length computed here), each manifest's exact bytes
  (one object per `Manifest` row, i.e. per repository) and each tag's object ({digest, tag},
  rewritten at `last_pushed_at`);
- the objects deleted from the bucket (the registry's `DeletedObject` ledger, docs/decisions/0052:
  kind, size, stored since, deleted at), each for its seconds stored in the period;
- egress: the metered bytes of the period (`usage_period_get`: proxied and redirected).

The rules (billing.conf.StorjPrices): storage per TB-month of 720 hours, measured per second
here; an object smaller than the minimum (50 kB) is billed as the minimum; the legacy segment fee
per segment-month, ceil(size / 64 MiB) segments and at least one per object; egress per TB; and
the 30-day minimum storage duration: an object deleted younger is billed, in its deletion's period,
for the rest of the 30 days (its own line; billing/storj_savings.py prices what GC and retention
would save with it). Not counted: upload sessions in progress (their multipart parts, the tails a
finishing upload drops) and the few objects deleted outside the drain (decision 0052). Amounts are
exact Decimals in US dollars, each line rounded once to 10^-10 dollars (half even), the total the
sum of its lines, every input beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, TypeVar

from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from billing.conf import StorjPrices, app_settings
from billing.selectors import subscription_get
from billing.usage_selectors import usage_period_get
from gateway.registry.models import Blob, DeletedObject, Manifest, Tag
from gateway.storage.keys import INDEX_JSON_OVERHEAD, TAG_JSON_OVERHEAD

TB = 10**12  # Storj counts in decimal units
MONTH_HOURS = 720  # Storj's standardised month: 30 days of 24 hours
MONTH_SECONDS = MONTH_HOURS * 3600
DAY_SECONDS = 24 * 3600
CENT_PLACES = Decimal("0.0000000001")  # amounts are kept to 10^-10 dollars
KINDS = ("blob", "index", "manifest", "tag")


def dollars_sum(*terms: tuple[int | Decimal, Decimal, int]) -> Decimal:
    """Σ numerator × price / denominator in dollars, rounded once to 10^-10 (computed with 60 digits: no float, no drift)."""
    with localcontext() as ctx:
        ctx.prec = 60
        total = sum((Decimal(n) * price / Decimal(d) for n, price, d in terms), Decimal(0))
        return total.quantize(CENT_PLACES, rounding=ROUND_HALF_EVEN)


def dollars(numerator: int | Decimal, price: Decimal, denominator: int) -> Decimal:
    """numerator × price / denominator in dollars, rounded once to 10^-10."""
    return dollars_sum((numerator, price, denominator))


def billable_bytes(size: int, prices: StorjPrices) -> int:
    """The bytes Storj bills an object of `size` for: the minimum object size at least."""
    return max(size, prices.min_object_bytes)


def segments(size: int, prices: StorjPrices) -> int:
    """The segments an object of `size` takes: ceil(size / 64 MiB), at least one (an empty object too)."""
    return max(1, -(-size // prices.segment_bytes))


def billed_seconds(
    *, stored_at: datetime, deleted_at: datetime | None, start: datetime, end: datetime, prices: StorjPrices
) -> int:
    """The seconds an object stored at `stored_at` is billed for in the period [start, end).

    The seconds it is stored in the period (until `deleted_at`; None: still stored at `end`),
    and — deleted in the period younger than the minimum storage duration — the rest of that
    duration too, in whole seconds of its lifetime, billed with the deletion (so an early-deleted
    object is billed for exactly the minimum duration in all, whatever periods it spans).
    """
    until = end if deleted_at is None else min(deleted_at, end)
    stored = max(0, int((until - max(stored_at, start)).total_seconds()))
    if deleted_at is None or not start <= deleted_at < end:
        return stored
    minimum = prices.min_duration_days * DAY_SECONDS
    return stored + max(0, min(minimum, minimum - int((deleted_at - stored_at).total_seconds())))


@dataclass
class ObjectTally:
    """One kind of object (blob data, index, manifest, tag) of the tenant, summed over the period."""

    kind: str
    objects: int = 0
    bytes: int = 0  # what they hold now
    billable_bytes: int = 0  # with the minimum object size
    small_objects: int = 0  # objects under the minimum size
    segments: int = 0
    byte_seconds: int = 0  # stored bytes × seconds stored in the period
    billable_byte_seconds: int = 0
    segment_seconds: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DeletedTally(ObjectTally):
    """One kind of object deleted from the bucket after the period's start and stored in it, summed (the deletion ledger).

    `bytes` is what they held; the byte-seconds count their seconds stored in the period, until
    deleted. `early_*` are those deleted in the period younger than the minimum storage duration,
    and `owed_*` the rest of that duration, which Storj bills with the deletion.
    """

    early_objects: int = 0
    early_bytes: int = 0
    owed_seconds: int = 0  # object-seconds of the minimum duration not stored
    owed_billable_byte_seconds: int = 0
    owed_segment_seconds: int = 0


@dataclass
class StorjCost:
    """A tenant's cost at Storj for a period, the lines that add up to it and the inputs behind each (explainable)."""

    start: datetime
    end: datetime
    measured_at: datetime  # objects as stored at this moment, held until `end` (a projection past it)
    prices: StorjPrices
    tallies: dict[str, ObjectTally]
    egress_bytes: int
    lines: dict[str, Decimal] = field(default_factory=dict)
    effects: dict[str, Decimal] = field(default_factory=dict)  # parts of the lines owed to Storj's rules
    plan: dict[str, Any] | None = None  # what the tenant pays: its plan's monthly price
    deleted: dict[str, DeletedTally] = field(default_factory=dict)  # per kind, the objects deleted since `start`

    @property
    def deleted_total(self) -> DeletedTally:
        """Every kind of deleted object together."""
        total = DeletedTally(kind="all")
        for tally in self.deleted.values():
            for name, value in tally.__dict__.items():
                if name != "kind":
                    setattr(total, name, getattr(total, name) + value)
        return total

    @property
    def total(self) -> Decimal:
        return sum(self.lines.values(), Decimal(0))

    @property
    def objects(self) -> int:
        return sum(t.objects for t in self.tallies.values())

    @property
    def stored_bytes(self) -> int:
        return sum(t.bytes for t in self.tallies.values())

    @property
    def billable_bytes(self) -> int:
        return sum(t.billable_bytes for t in self.tallies.values())

    @property
    def small_objects(self) -> int:
        return sum(t.small_objects for t in self.tallies.values())

    @property
    def segments(self) -> int:
        return sum(t.segments for t in self.tallies.values())

    @property
    def margin(self) -> Decimal | None:
        """The plan's price for the period's share of a month minus the Storj cost (None without a plan, or one not priced in USD)."""
        if self.plan is None or self.plan["currency"] != "USD":  # Storj bills US dollars; no exchange rates here
            return None
        return self.plan["price_for_period"] - self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "measured_at": self.measured_at,
            "prices": dict(self.prices.__dict__),
            "objects": {k: t.as_dict() for k, t in self.tallies.items()},
            "egress_bytes": self.egress_bytes,
            "lines": dict(self.lines),
            "effects": dict(self.effects),
            "total": self.total,
            "plan": self.plan,
            "margin": self.margin,
            "deleted": {k: t.as_dict() for k, t in self.deleted.items()},
        }


_OBJECTS_SQL = f"""
    WITH objects AS (
        SELECT 'blob' AS kind, b.size::bigint AS size, b.created_at AS since
            FROM {Blob._meta.db_table} b WHERE b.tenant_id = %(tenant)s
        UNION ALL
        SELECT 'index', ({INDEX_JSON_OVERHEAD} + length(b.digest) + length(b.storage_key) + length(b.size::text))::bigint,
               b.created_at
            FROM {Blob._meta.db_table} b WHERE b.tenant_id = %(tenant)s
        UNION ALL
        SELECT 'manifest', m.size::bigint, m.created_at
            FROM {Manifest._meta.db_table} m WHERE m.tenant_id = %(tenant)s
        UNION ALL
        SELECT 'tag', ({TAG_JSON_OVERHEAD} + length(m.digest) + length(t.name))::bigint, t.last_pushed_at
            FROM {Tag._meta.db_table} t JOIN {Manifest._meta.db_table} m ON m.id = t.manifest_id
            WHERE t.tenant_id = %(tenant)s
    ), timed AS (
        SELECT kind, size, GREATEST(size, %(min_bytes)s) AS billable,
               GREATEST(1, (size + %(segment)s - 1) / %(segment)s) AS segments,
               GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(end)s - GREATEST(since, %(start)s)))))::numeric AS seconds
            FROM objects WHERE since < %(end)s
    )
    SELECT kind, count(*), sum(size), sum(billable), count(*) FILTER (WHERE size < %(min_bytes)s), sum(segments),
           sum(size * seconds), sum(billable * seconds), sum(segments * seconds)
        FROM timed GROUP BY kind
"""


def _tallies(*, tenant: Tenant, start: datetime, end: datetime, prices: StorjPrices) -> dict[str, ObjectTally]:
    """Every object of the tenant stored before `end`, per kind, in one query."""
    return _per_kind(ObjectTally, _OBJECTS_SQL, tenant=tenant, start=start, end=end, prices=prices)


T = TypeVar("T", bound="ObjectTally")


def _per_kind(tally: type[T], sql: str, *, tenant: Tenant, start: datetime, end: datetime, prices: StorjPrices) -> dict[str, T]:
    """One tally per kind (zeros for a kind with no row) from `sql`, whose rows are (kind, *integer figures)."""
    tallies = {kind: tally(kind=kind) for kind in KINDS}
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "start": start,
        "end": end,
        "min_bytes": prices.min_object_bytes,
        "segment": prices.segment_bytes,
        "min_seconds": prices.min_duration_days * DAY_SECONDS,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, *figures in cursor.fetchall():
            tallies[kind] = tally(kind, *(int(f or 0) for f in figures))
    return tallies


# The ledger's objects deleted at or after `start` and stored before `end`: seconds stored in the period, until deleted;
# deleted in it younger than the minimum duration, the rest of it in whole seconds of lifetime (at most the duration: a
# clock skew never bills more). billed_seconds' rule, set-based. 'data' is a blob's bytes: the "blob" kind of the stored objects.
_DELETED_SQL = f"""
    WITH timed AS (
        SELECT CASE d.kind WHEN 'data' THEN 'blob' ELSE d.kind END AS kind, d.size::bigint AS size,
               GREATEST(d.size, %(min_bytes)s) AS billable,
               GREATEST(1, (d.size + %(segment)s - 1) / %(segment)s) AS segments,
               GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (LEAST(d.deleted_at, %(end)s) - GREATEST(d.stored_since, %(start)s)))))::numeric
                   AS seconds,
               CASE WHEN d.deleted_at < %(end)s THEN LEAST(%(min_seconds)s, GREATEST(0,
                   %(min_seconds)s - FLOOR(EXTRACT(EPOCH FROM (d.deleted_at - d.stored_since)))))::numeric ELSE 0 END AS owed
            FROM {DeletedObject._meta.db_table} d
            WHERE d.tenant_id = %(tenant)s AND d.deleted_at >= %(start)s AND d.stored_since < %(end)s
    )
    SELECT kind, count(*), sum(size), sum(billable), count(*) FILTER (WHERE size < %(min_bytes)s), sum(segments),
           sum(size * seconds), sum(billable * seconds), sum(segments * seconds),
           count(*) FILTER (WHERE owed > 0), sum(size) FILTER (WHERE owed > 0), sum(owed), sum(billable * owed), sum(segments * owed)
        FROM timed GROUP BY kind
"""


def _deleted(*, tenant: Tenant, start: datetime, end: datetime, prices: StorjPrices) -> dict[str, DeletedTally]:
    """The ledger's objects deleted since `start` that were stored before `end`, per kind, in one query."""
    return _per_kind(DeletedTally, _DELETED_SQL, tenant=tenant, start=start, end=end, prices=prices)


def month_of(moment: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month holding `moment`: its first hour and the next month's."""
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


def _plan(tenant: Tenant, start: datetime, end: datetime) -> dict[str, Any] | None:
    subscription = subscription_get(tenant=tenant)
    if subscription is None:
        return None
    plan = subscription.plan
    monthly = Decimal(plan.monthly_price_minor) / 100
    month_start, month_end = month_of(start)
    return {
        "code": plan.code,
        "name": plan.name,
        "currency": plan.currency,
        "monthly_price": monthly,
        # A plan's price is per calendar month: the period's share of the month it starts in (a whole month: the price).
        "price_for_period": dollars(int((end - start).total_seconds()), monthly, int((month_end - month_start).total_seconds())),
    }


def storage_cost_get(*, tenant: Tenant, start: datetime, end: datetime, now: datetime | None = None) -> StorjCost:
    """What the tenant's data costs at Storj from `start` to `end` (UTC hours), with every input; beside it the plan's price.

    Storage: the objects stored at `now` (default: now), each from when it was written, or
    `start`, until `end`. Deleted objects (the registry's ledger): each for its seconds stored in
    the period, and, deleted in it younger than the minimum storage duration, the rest of that
    duration (the `minimum_duration` line). Egress: the metered bytes of the period. Reads only;
    five queries.
    """
    prices = app_settings.storj_prices
    usage = usage_period_get(tenant=tenant, start=start, end=end)
    tallies = _tallies(tenant=tenant, start=start, end=end, prices=prices)
    cost = StorjCost(
        start=start,
        end=end,
        measured_at=now or timezone.now(),
        prices=prices,
        tallies=tallies,
        egress_bytes=int(usage["egress_bytes"]),
        plan=_plan(tenant, start, end),
        deleted=_deleted(tenant=tenant, start=start, end=end, prices=prices),
    )
    byte_seconds = sum(t.byte_seconds for t in tallies.values())
    billable = sum(t.billable_byte_seconds for t in tallies.values())
    gone = cost.deleted_total
    cost.lines = {
        "storage": dollars(billable, prices.storage_tb_month, TB * MONTH_SECONDS),
        "segments": dollars(sum(t.segment_seconds for t in tallies.values()), prices.segment_month, MONTH_SECONDS),
        "egress": dollars(cost.egress_bytes, prices.egress_tb, TB),
        "deleted_storage": dollars(gone.billable_byte_seconds, prices.storage_tb_month, TB * MONTH_SECONDS),
        "deleted_segments": dollars(gone.segment_seconds, prices.segment_month, MONTH_SECONDS),
        # Storage and segments alike, for the rest of the minimum duration: one line, rounded once.
        "minimum_duration": dollars_sum(
            (gone.owed_billable_byte_seconds, prices.storage_tb_month, TB * MONTH_SECONDS),
            (gone.owed_segment_seconds, prices.segment_month, MONTH_SECONDS),
        ),
    }
    cost.effects = {
        # What the minimum object size adds to the storage line (Wharf's index, tag and manifest objects are tiny).
        "minimum_object_size": dollars(billable - byte_seconds, prices.storage_tb_month, TB * MONTH_SECONDS),
        "bookkeeping_objects": dollars(
            sum(tallies[k].billable_byte_seconds for k in ("index", "tag")), prices.storage_tb_month, TB * MONTH_SECONDS
        ),
    }
    return cost
