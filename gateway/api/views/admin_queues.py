"""Platform operators' queues: GET /api/v1/admin/queues — Celery queue depths and the registry's event backlog (staff)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import StaffApiView
from gateway.api.views.admin_tenants import admin_schema
from gateway.core.queues import celery_queue_depths
from gateway.registry.services.stream import events_backlog


class AdminQueuesGetApi(StaffApiView):
    """How much work is waiting: each Celery queue's messages, those taken but unacknowledged, and undelivered events."""

    class OutputSerializer(serializers.Serializer):
        class QueueSerializer(serializers.Serializer):
            name = serializers.CharField()
            depth = serializers.IntegerField(help_text="Messages waiting in the broker.")

        class EventsSerializer(serializers.Serializer):
            queued = serializers.IntegerField(help_text="Recorded, not yet claimed by a flush.")
            processing = serializers.IntegerField(help_text="Claimed by a flush that has not acknowledged them yet.")

        queues = QueueSerializer(many=True)
        unacknowledged = serializers.IntegerField(help_text="Messages delivered to workers, not yet acknowledged.")
        events = EventsSerializer(help_text="The registry's event stream (usage, replication, webhooks).")

    @admin_schema("admin_queues_get", "Queue depths and the event backlog", responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        depths, unacknowledged = celery_queue_depths()
        data = {
            "queues": [{"name": name, "depth": depth} for name, depth in depths.items()],
            "unacknowledged": unacknowledged,
            "events": events_backlog(),
        }
        return Response(self.OutputSerializer(data).data)
