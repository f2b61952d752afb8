"""Filters of a tenant's audit log (actor, action or action prefix, target, success, since/until): the admin API's and the dashboard's.

A django-filter FilterSet over `selectors.audit_event_list`, so both faces select the same rows
from the same query parameters and answer the same messages for bad ones.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet

from accounts.models import AuditEvent


class AuditEventFilterForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("since", "until"):  # in UTC: PostgreSQL takes no offset beyond ±15:59, ISO 8601 up to ±23:59
            if data.get(name) is not None:
                try:
                    data[name] = data[name].astimezone(UTC)
                except OverflowError:
                    self.add_error(name, "Out of range once converted to UTC.")
                    data[name] = None
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and until <= since:
            self.add_error("until", "Must be later than since.")
        return data


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(help_text="Who acted: a username, `<tenant>+<robot>`, `anonymous` or `system`.")
    action = django_filters.CharFilter(
        method="filter_action",
        help_text="An action (`robot.create`), or a prefix ending in `.` (`robot.`) for every action under it.",
    )
    target = django_filters.CharFilter(help_text="What it acted on, exactly (`team/app:v1`, a username, a robot's name).")
    success = django_filters.BooleanFilter(help_text="Only events that succeeded (true) or were refused (false).")
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601; events at or after it (UTC unless an offset is given)."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601; events before it (UTC unless an offset is given)."
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "success", "since", "until"]
        form = AuditEventFilterForm

    def filter_action(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet[AuditEvent]:
        return queryset.filter(action__startswith=value) if value.endswith(".") else queryset.filter(action=value)
