"""A tenant's audit log: /api/v1/tenants/{slug}/audit-events (JSON pages) and …/audit-events.csv (a streamed download).

Admins and owners only, as in Harbor and Quay: the log names every member's actions, IP
addresses and user agents. Both operations take the same django-filter filters and list the
newest first (created_at, then pk). The CSV holds every matching event, streamed from a
server-side cursor in constant memory (docs/decisions/0027).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit_filters import AuditEventFilter
from accounts.models import AuditEvent
from accounts.selectors import audit_event_list
from gateway.api.base import ApiView, paginate
from gateway.api.csv_export import CsvRenderer, csv_response
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission, TenantWidePermission
from gateway.api.schema import ApiAutoSchema

ORDERING = ("-created_at", "-pk")
CSV_CHUNK = 1000  # rows fetched per round trip from the server-side cursor


class AuditEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.CharField()
    target = serializers.CharField(help_text="Empty when the action has no single target.")
    success = serializers.BooleanField(help_text="False: the action was attempted and refused.")
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    detail = serializers.JSONField(help_text="What else the action recorded (an object; its keys depend on the action).")


CSV_COLUMNS = list(AuditEventOutputSerializer().fields)


class _AuditEventApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission, TenantWidePermission]
    tenant_roles = {"GET": ADMINS}
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter
    queryset = AuditEvent.objects.none()  # the model, for the schema's filter parameters; rows come from the selector

    def events(self, request: Request) -> QuerySet[AuditEvent]:
        """The URL tenant's events that the query's filters select (400 problem on a bad filter)."""
        events = audit_event_list(tenant=request.tenant)  # type: ignore[attr-defined]
        return DjangoFilterBackend().filter_queryset(request, events, self)


class AuditEventListApi(_AuditEventApi):
    """The tenant's audit events, newest first, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(AuditEventOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_audit_events_list",
        tags=["audit"],
        summary="The tenant's audit events, newest first (admins and owners)",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        return paginate(
            request=request, view=self, queryset=self.events(request), serializer=self.OutputSerializer, ordering=ORDERING
        )


class _FilteredDownloadSchema(ApiAutoSchema):
    """A download that is no JSON list still documents its view's filters."""

    def get_filter_backends(self) -> list[Any]:
        return getattr(self.view, "filter_backends", [])


class AuditEventExportApi(_AuditEventApi):
    """Every audit event the filters select, newest first, as a streamed CSV (the list's fields as columns)."""

    renderer_classes = [CsvRenderer]  # Accept: text/csv or */*; errors are still problem+json
    schema = _FilteredDownloadSchema()

    @extend_schema(
        operation_id="tenant_audit_events_export",
        tags=["audit"],
        summary="The tenant's audit events as CSV (admins and owners)",
        description=(
            f"Columns: {', '.join(CSV_COLUMNS)}; `detail` as JSON. Cells that a spreadsheet would run as a "
            "formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) start with `'`."
        ),
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A CSV file with a header row.")},
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        tenant = request.tenant  # type: ignore[attr-defined]
        return csv_response(filename=f"{tenant.slug}-audit-events.csv", header=CSV_COLUMNS, rows=_csv_rows(self.events(request)))


def _csv_rows(events: QuerySet[AuditEvent]) -> Iterator[list[Any]]:
    """Each event as the list serializes it (so the CSV and the JSON agree), from a server-side cursor."""
    serializer = AuditEventOutputSerializer()
    for event in events.iterator(chunk_size=CSV_CHUNK):
        data = serializer.to_representation(event)
        yield [_json(data["detail"]) if column == "detail" else data[column] for column in CSV_COLUMNS]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
