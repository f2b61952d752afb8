"""A tenant's webhooks: /api/v1/tenants/{slug}/webhooks[/{id}[/test | /deliveries[/{id}/redeliver]]] — admins and owners.

The signing secret is write-only: generated on create (or given) and returned in that response
only, replaceable by PATCH, never in a GET. An endpoint carries an ETag; PATCH and DELETE need
If-Match (docs/decisions/0020). `test` queues a `ping` through the real delivery path (202).
URLs pass the outbound address policy when given and before every send (gateway/webhooks/services.py).
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, etag_set, if_match_locked
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission
from gateway.core.errors import NotFound
from gateway.webhooks import selectors
from gateway.webhooks.locks import webhook_endpoint_lock
from gateway.webhooks.models import EVENTS, WebhookDelivery, WebhookEndpoint
from gateway.webhooks.services import (
    MAX_SECRET,
    MIN_SECRET,
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_ping,
    webhook_endpoint_update,
)

EVENT_CHOICES = [*EVENTS, "*"]
WEBHOOK = OpenApiParameter("webhook_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The webhook's id.")
DELIVERY = OpenApiParameter("delivery_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The delivery's id.")


DELIVERY_STATES = WebhookDelivery.State.choices  # named WebhookDeliveryStateEnum in the schema (settings)


class WebhookOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), help_text="`*`: every event.")
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField(help_text="The event name (`ping` for a test).")
    event_id = serializers.UUIDField(help_text="`X-Wharf-Delivery`: the same on every attempt; receivers de-duplicate on it.")
    state = serializers.ChoiceField(choices=DELIVERY_STATES)
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(source="last_status_code", allow_null=True, help_text="Of the last attempt.")
    error = serializers.CharField(source="last_error", help_text="Why the last attempt failed (empty: it did not).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class DeliveryFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=DELIVERY_STATES)
    event = django_filters.CharFilter(max_length=64)

    class Meta:
        model = WebhookDelivery
        fields = ["state", "event"]


DELIVERY_FILTERS = [
    OpenApiParameter("state", OpenApiTypes.STR, enum=WebhookDelivery.State.values, description="Only deliveries in this state."),
    OpenApiParameter("event", OpenApiTypes.STR, description="Only deliveries of this event."),
]


def _endpoint(request: Request, webhook_id: int) -> WebhookEndpoint:
    found = selectors.webhook_endpoint_get(tenant=request.tenant, endpoint_id=webhook_id)  # type: ignore[attr-defined]
    if found is None:
        raise NotFound(f"No webhook {webhook_id}.")
    return found


def _locked(request: Request, webhook_id: int) -> WebhookEndpoint:
    """The endpoint, locked, after its If-Match check (call inside a transaction)."""
    found = webhook_endpoint_lock(tenant=request.tenant, endpoint_id=webhook_id)  # type: ignore[attr-defined]
    return if_match_locked(request, found, WebhookOutputSerializer, f"No webhook {webhook_id}.")


class _WebhookApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "POST": ADMINS, "PATCH": ADMINS, "DELETE": ADMINS}


class WebhookListApi(_WebhookApi):
    """The tenant's webhook endpoints, newest first, a page at a time (no secrets)."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(WebhookOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_list",
        tags=["webhooks"],
        summary="The tenant's webhooks (admins and owners)",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        endpoints = selectors.webhook_endpoint_list(tenant=request.tenant)  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=endpoints, serializer=self.OutputSerializer, ordering="-pk")


class WebhookCreateApi(_WebhookApi):
    """Register an endpoint; the signing secret (given or generated) is in this response only. Audited."""

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=500, help_text="http(s); must resolve to public addresses.")
        events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), allow_empty=False)
        description = serializers.CharField(max_length=200, allow_blank=True, default="")
        enabled = serializers.BooleanField(default=True)
        secret = serializers.CharField(
            min_length=MIN_SECRET,
            max_length=MAX_SECRET,
            required=False,
            write_only=True,
            trim_whitespace=False,
            help_text="The HMAC signing secret; omitted: one is generated.",
        )

    class OutputSerializer(WebhookOutputSerializer):
        secret = serializers.CharField(help_text="Shown this once; keep it to verify `X-Wharf-Signature`.")

    @extend_schema(
        operation_id="webhooks_create",
        tags=["webhooks"],
        summary="Register a webhook (the secret is in this response only)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = webhook_endpoint_create(tenant=request.tenant, actor=self.actor(), **serializer.validated_data)  # type: ignore[attr-defined]
        representation = WebhookOutputSerializer(created.endpoint).data
        response = Response({**representation, "secret": created.secret}, status=status.HTTP_201_CREATED)
        return etag_set(response, representation)


class WebhookGetApi(_WebhookApi):
    """One endpoint, with its ETag."""

    class OutputSerializer(WebhookOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_get", tags=["webhooks"], summary="One webhook", parameters=[WEBHOOK], responses=OutputSerializer
    )
    def get(self, request: Request, slug: str, webhook_id: int) -> Response:
        data = self.OutputSerializer(_endpoint(request, webhook_id)).data
        return etag_response(data)


class WebhookUpdateApi(_WebhookApi):
    """Change the fields sent (a new `secret` replaces the old one at once). If-Match; audited."""

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=500, required=False)
        events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), allow_empty=False, required=False)
        description = serializers.CharField(max_length=200, allow_blank=True, required=False)
        enabled = serializers.BooleanField(required=False)
        secret = serializers.CharField(
            min_length=MIN_SECRET, max_length=MAX_SECRET, required=False, write_only=True, trim_whitespace=False
        )

    class OutputSerializer(WebhookOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_update",
        tags=["webhooks"],
        summary="Change a webhook",
        parameters=[WEBHOOK, IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str, webhook_id: int) -> Response:
        _endpoint(request, webhook_id)  # 404 before 428: no hint about other tenants' ids
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            endpoint = _locked(request, webhook_id)
            endpoint = webhook_endpoint_update(endpoint=endpoint, actor=self.actor(), **serializer.validated_data)
        data = self.OutputSerializer(endpoint).data
        return etag_response(data)


class WebhookDeleteApi(_WebhookApi):
    """Remove an endpoint and its delivery history. If-Match; audited."""

    @extend_schema(
        operation_id="webhooks_delete",
        tags=["webhooks"],
        summary="Delete a webhook",
        parameters=[WEBHOOK, IF_MATCH],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, slug: str, webhook_id: int) -> Response:
        with transaction.atomic():
            webhook_endpoint_delete(endpoint=_locked(request, webhook_id), actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(_WebhookApi):
    """Send a `ping` event to this endpoint through the real delivery path (queued; 202 with the delivery). Audited."""

    class OutputSerializer(DeliveryOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_test",
        tags=["webhooks"],
        summary="Send a test (ping) event",
        parameters=[WEBHOOK],
        request=None,
        responses={202: OutputSerializer},
    )
    def post(self, request: Request, slug: str, webhook_id: int) -> Response:
        delivery = webhook_endpoint_ping(endpoint=_endpoint(request, webhook_id), actor=self.actor())
        return Response(self.OutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(_WebhookApi):
    """An endpoint's deliveries, newest first, filtered by state or event (django-filter)."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(DeliveryOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        tags=["webhooks"],
        summary="A webhook's deliveries",
        parameters=[WEBHOOK, *DELIVERY_FILTERS],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str, webhook_id: int) -> Response:
        endpoint = _endpoint(request, webhook_id)
        deliveries = selectors.webhook_delivery_list(tenant=request.tenant, endpoint=endpoint)  # type: ignore[attr-defined]
        filters = DeliveryFilter(request.query_params, queryset=deliveries)
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        return paginate(request=request, view=self, queryset=filters.qs, serializer=self.OutputSerializer, ordering="-pk")


class WebhookRedeliverApi(_WebhookApi):
    """Send a delivered or failed delivery again (same event id and body; 409 while it is pending). Audited."""

    class OutputSerializer(DeliveryOutputSerializer):
        pass

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        tags=["webhooks"],
        summary="Redeliver a delivery",
        parameters=[WEBHOOK, DELIVERY],
        request=None,
        responses={202: OutputSerializer},
    )
    def post(self, request: Request, slug: str, webhook_id: int, delivery_id: int) -> Response:
        endpoint = _endpoint(request, webhook_id)
        delivery = selectors.webhook_delivery_get(tenant=request.tenant, endpoint=endpoint, delivery_id=delivery_id)  # type: ignore[attr-defined]
        if delivery is None:
            raise NotFound(f"No delivery {delivery_id} of webhook {webhook_id}.")
        delivery = webhook_delivery_redeliver(delivery=delivery, actor=self.actor())
        return Response(self.OutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
