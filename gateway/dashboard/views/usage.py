"""Usage (any member): stored, unique and shared bytes over 30 or 90 days, egress and pulls per day, top repositories, the quota.

The same selectors as the API's usage operation (usage_selectors.py) plus the daily storage
snapshots (StorageSnapshot): today's storage point is the live figure, earlier days are what the
snapshot task recorded, and a day it did not record is shown as a gap. Four queries for the data
whatever the range or the number of repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.storj_savings import StorjOverview, storj_overview_get
from gateway.dashboard.access import org_view
from gateway.dashboard.charts import bar_chart, line_chart
from gateway.dashboard.templatetags.wharf import binarysize
from gateway.registry.usage_selectors import usage_storage_get, usage_storage_history_list, usage_traffic_get

RANGES = (30, 90)
TOP_N = 10
WARN_PERCENT, FULL_PERCENT = 80, 100
STORAGE_SERIES = (("stored", "Stored"), ("unique", "Unique"), ("shared", "Shared"))


class RangeForm(forms.Form):
    days = forms.TypedChoiceField(choices=[(str(d), f"{d} days") for d in RANGES], coerce=int, required=False)


@dataclass(frozen=True)
class Quota:
    """The tenant's storage quota against what it stores: state "none", "ok", "warn" (≥ 80 %) or "full" (≥ 100 %)."""

    limit: int | None
    used: int

    @property
    def percent(self) -> int:
        return min(int(self.used * 100 // self.limit), 999) if self.limit else 0

    @property
    def bar_percent(self) -> int:
        return min(self.percent, 100)

    @property
    def state(self) -> str:
        if self.limit is None:
            return "none"
        if self.limit == 0 or self.percent >= FULL_PERCENT:
            return "full"
        return "warn" if self.percent >= WARN_PERCENT else "ok"


def _count(value: int) -> str:
    return str(value)


def _history(tenant: Any, storage: dict[str, Any], since: Any, until: Any) -> list[dict[str, Any]]:
    history = usage_storage_history_list(tenant=tenant, since=since, until=until)
    # Today's point is what the tenant stores now (the day's snapshot, if any, is older).
    history[-1] = {"date": until, "recorded": True, "live": True, **{k: v for k, v in storage.items() if k != "repositories"}}
    return history


@org_view()
def usage(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = request.org.tenant  # type: ignore[attr-defined]
    form = RangeForm(request.GET)
    days = (form.cleaned_data.get("days") if form.is_valid() else None) or RANGES[0]
    until = datetime.now(UTC).date()
    since = until - timedelta(days=days - 1)
    storage = usage_storage_get(tenant=tenant)
    traffic = usage_traffic_get(tenant=tenant, since=since, until=until)
    history = _history(tenant, storage, since, until)
    dates = [row["date"] for row in history]
    series = [(key, label, [row.get(f"{key}_bytes") for row in history]) for key, label in STORAGE_SERIES]
    context = {
        "nav_current": "usage",
        "form": form,
        "days": days,
        "ranges": RANGES,
        "since": since,
        "until": until,
        "storage": storage,
        "traffic": traffic,
        "history": history,
        "recorded_days": sum(1 for row in history if row["recorded"]),
        "storage_chart": line_chart(dates, series, binarysize),
        "egress_chart": bar_chart(dates, [d["egress_bytes"] for d in traffic["days"]], binarysize),
        "pulls_chart": bar_chart(dates, [d["pulls"] for d in traffic["days"]], _count),
        "top_stored": sorted(storage["repositories"], key=lambda r: (-r["stored_bytes"], r["name"]))[:TOP_N],
        "top_unique": sorted(storage["repositories"], key=lambda r: (-r["unique_bytes"], r["name"]))[:TOP_N],
        "top_pulled": sorted(traffic["repositories"], key=lambda r: (-r["pulls"], -r["egress_bytes"], r["name"]))[:TOP_N],
        "quota": Quota(limit=tenant.storage_quota_bytes, used=storage["stored_bytes"]),
    }
    if request.org.can_admin:  # type: ignore[attr-defined]
        context.update(storj_context(storj_overview_get(tenant=tenant), whose="your"))
    return render(request, "dashboard/usage/usage.html", context)


def storj_context(storj: StorjOverview, *, whose: str, margin: bool = False) -> dict[str, Any]:
    """What templates/dashboard/usage/_storj_cost.html reads (the usage page, and the staff console's tenant page with the margin)."""
    savings = [("Garbage collection ran now", storj.gc), ("Retention policies applied, then garbage collection", storj.retention)]
    return {"storj": storj, "storj_savings": savings, "whose": whose, "margin": margin}
