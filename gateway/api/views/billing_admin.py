"""Platform operators' plans: /api/v1/admin/plans[/{code}] (staff, decision 0046).

Every plan, inactive ones too; staff create custom plans (billing.services.plan_create) and change
a plan (billing.services.plan_update: its limits are re-written to every subscriber in the same
transaction). A plan is edited concurrently (by staff here and in Django's admin), so it has an ETag
and changing it needs If-Match. The code names a plan for good: it is never changed.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing import locks
from billing.models import Plan
from billing.selectors import plan_get, plan_list
from billing.services import plan_create, plan_update
from gateway.api.base import StaffApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_locked
from gateway.api.pagination import ApiCursorPagination
from gateway.api.views.admin_tenants import admin_schema
from gateway.api.views.billing import PLAN_EXAMPLE, PlanOutputSerializer
from gateway.core.errors import NotFound

EXAMPLE = OpenApiExample("plan", value=PLAN_EXAMPLE, response_only=True)


INT, BIGINT = 2**31 - 1, 2**63 - 1  # the columns' ranges: a larger value is a 400, never a database error


def _limit(maximum: int = INT, help_text: str = "null: unlimited.") -> serializers.IntegerField:
    return serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=maximum, help_text=help_text)


def _amount(help_text: str = "") -> serializers.IntegerField:
    return serializers.IntegerField(required=False, min_value=0, max_value=INT, help_text=help_text)


class PlanFieldsSerializer(serializers.Serializer):
    """What staff set on a plan; an omitted field keeps its value (on create: its default, unlimited for limits)."""

    name = serializers.CharField(required=False, max_length=100)
    monthly_price_minor = _amount("In minor units of currency (cents).")
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, help_text="ISO 4217, e.g. USD.")
    storage_quota_bytes = _limit(BIGINT, "Decimal: 1 GB = 10^9 bytes; null: unlimited.")
    private_repositories_limit = _limit()
    members_limit = _limit()
    robots_limit = _limit()
    pulls_per_window_authenticated = _limit(help_text="Per 6 hours; null: unlimited.")
    pulls_per_window_anonymous = _limit(help_text="Per address, per 6 hours; null: unlimited.")
    egress_bytes_per_month_limit = _limit(BIGINT)
    storage_overage_minor_per_gb = _amount()
    egress_overage_minor_per_gb = _amount()
    is_active = serializers.BooleanField(required=False, help_text="false: keeps its subscribers, takes no new ones.")


def _plan(code: str) -> Plan:
    plan = plan_get(code=code)
    if plan is None:
        raise NotFound(f"No plan {code!r}.")
    return plan


class AdminPlanListApi(StaffApiView):
    """Every plan, inactive and custom ones too, cheapest first."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(PlanOutputSerializer):
        pass

    @admin_schema("admin_plans_list", "Every plan", responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginate(
            request=request,
            view=self,
            queryset=plan_list(),
            serializer=self.OutputSerializer,
            ordering=("monthly_price_minor", "code"),
        )


class AdminPlanCreateApi(StaffApiView):
    """Create a plan (a custom one for a customer, say); 409 if the code is taken; audited."""

    class InputSerializer(PlanFieldsSerializer):
        code = serializers.RegexField(r"^[a-z0-9_-]{1,32}$", help_text="Lower-case letters, digits, - and _; never changes.")
        name = serializers.CharField(max_length=100)

    class OutputSerializer(PlanOutputSerializer):
        pass

    @admin_schema(
        "admin_plans_create",
        "Create a plan",
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "custom",
                value={
                    "code": "acme-enterprise",
                    "name": "Acme Enterprise",
                    "monthly_price_minor": 99000,
                    "storage_quota_bytes": None,
                },
                request_only=True,
            ),
            EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        code, name = fields.pop("code"), fields.pop("name")
        plan = plan_create(code=code, name=name, fields=fields, actor=self.actor())
        response = etag_response(self.OutputSerializer(plan).data, status_code=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/admin/plans/{plan.code}"
        return response


class AdminPlanGetApi(StaffApiView):
    """One plan, any status, with the ETag that changing it needs."""

    class OutputSerializer(PlanOutputSerializer):
        pass

    @admin_schema("admin_plans_get", "One plan", responses=OutputSerializer, examples=[EXAMPLE])
    def get(self, request: Request, code: str) -> Response:
        return etag_response(self.OutputSerializer(_plan(code)).data)


class AdminPlanUpdateApi(StaffApiView):
    """Change a plan's price, limits or status; its limits are re-written to every subscriber at once; If-Match; audited."""

    class InputSerializer(PlanFieldsSerializer):
        pass

    class OutputSerializer(PlanOutputSerializer):
        pass

    @admin_schema(
        "admin_plans_update",
        "Change a plan",
        [IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
        examples=[OpenApiExample("raise the quota", value={"storage_quota_bytes": 100_000_000_000}, request_only=True), EXAMPLE],
    )
    def patch(self, request: Request, code: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            # plan_update's own lock (plan first, then its subscriptions), taken before the comparison.
            if_match_locked(request, locks.plan_lock(code=code), self.OutputSerializer, f"No plan {code!r}.")
            plan = plan_update(code=code, changes=dict(serializer.validated_data), actor=self.actor())
        return etag_response(self.OutputSerializer(plan).data)
