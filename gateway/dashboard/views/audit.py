"""The audit log (admins and owners): the tenant's events with the API's filters, a page at a time, and a CSV export.

Filters are the API's (accounts.audit_filters.AuditEventFilter), so both faces select the same rows
and give the same messages for a bad date. Pages are keyset-paginated on (created_at, pk), newest
first: the `after` cursor names the last row shown, so each page costs the same queries however
deep it is. The CSV streams every matching event from a server-side cursor, with the API's columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render

from accounts.audit_filters import AuditEventFilter
from accounts.models import AuditEvent, Membership
from accounts.selectors import audit_event_list
from gateway.core.csv_export import csv_response
from gateway.dashboard.access import org_view

PAGE_SIZE = 50
CSV_CHUNK = 1000
CSV_COLUMNS = ["id", "created_at", "actor", "action", "target", "success", "ip", "user_agent", "detail"]
FILTER_FIELDS = ("actor", "action", "target", "success", "since", "until")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cursor(event: AuditEvent) -> str:
    """`<microseconds since the epoch>-<pk>` of the last row of a page."""
    delta = event.created_at - _EPOCH
    return f"{(delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds}-{event.pk}"


def _after(events: QuerySet[AuditEvent], cursor: str) -> QuerySet[AuditEvent] | None:
    """The events older than the cursor's row; None when the cursor is not one this page gave out."""
    micros, _, pk = cursor.partition("-")
    if not (micros.isdigit() and pk.isdigit()):
        return None
    try:
        at = datetime.fromtimestamp(int(micros) // 1_000_000, tz=UTC).replace(microsecond=int(micros) % 1_000_000)
    except (OverflowError, OSError, ValueError):
        return None
    return events.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=int(pk)))


def _filtered(request: HttpRequest) -> AuditEventFilter:
    return AuditEventFilter(request.GET, queryset=audit_event_list(tenant=request.org.tenant))  # type: ignore[attr-defined]


def _query(params: QueryDict, **extra: str) -> str:
    """The filters of the request (no cursor) plus `extra`, as a query string."""
    kept = QueryDict(mutable=True)
    for name in FILTER_FIELDS:
        value = params.get(name)
        if value:
            kept[name] = value
    kept.update(extra)
    return kept.urlencode()


@org_view(min_role=Membership.Role.ADMIN)
def audit(request: HttpRequest, slug: str) -> HttpResponse:
    filtered = _filtered(request)
    context: dict[str, Any] = {"nav_current": "audit", "filter": filtered, "form": filtered.form, "events": []}
    status = 200
    if not filtered.is_valid():
        status = 400
    else:
        events: QuerySet[AuditEvent] = filtered.qs
        cursor = request.GET.get("after", "")
        if cursor:
            older = _after(filtered.qs, cursor)
            if older is None:
                context["cursor_error"] = "That page link is not valid any more: showing the newest events."
            else:
                events = older
        rows = list(events[: PAGE_SIZE + 1])
        context["events"] = rows[:PAGE_SIZE]
        context["next_query"] = _query(request.GET, after=_cursor(rows[PAGE_SIZE - 1])) if len(rows) > PAGE_SIZE else None
        context["paged"] = bool(cursor)
    context["first_query"] = _query(request.GET)
    return render(request, "dashboard/audit/audit.html", context, status=status)


@org_view(min_role=Membership.Role.ADMIN)
def audit_export(request: HttpRequest, slug: str) -> HttpResponse:
    filtered = _filtered(request)
    if not filtered.is_valid():
        context = {"nav_current": "audit", "filter": filtered, "form": filtered.form, "events": [], "first_query": ""}
        return render(request, "dashboard/audit/audit.html", context, status=400)
    # A StreamingHttpResponse: org_view's signature names HttpResponse, which Django's handler does not require.
    return csv_response(filename=f"{slug}-audit-events.csv", header=CSV_COLUMNS, rows=_csv_rows(filtered.qs))  # type: ignore[return-value]


def _timestamp(value: datetime) -> str:
    """As the API writes date-times: ISO 8601 in UTC, `Z` for +00:00."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _csv_rows(events: QuerySet[AuditEvent]) -> Iterator[list[Any]]:
    for e in events.iterator(chunk_size=CSV_CHUNK):
        detail = json.dumps(e.detail, sort_keys=True, separators=(",", ":"))
        yield [e.pk, _timestamp(e.created_at), e.actor, e.action, e.target, e.success, e.ip, e.user_agent, detail]
