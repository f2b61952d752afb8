"""Plans, a tenant's subscription and its billing usage (decision 0046).

- `GET /api/v1/plans`: the plans open to subscribers, cheapest first (any signed-in caller).
- `GET /api/v1/tenants/{slug}/subscription`: the plan, status and period (owners and admins), with an ETag;
  `PUT`/`PATCH` change the plan (owners only, If-Match): billing.services.subscription_change_plan, which
  writes the plan's limits to the tenant. A downgrade is allowed when the tenant is past the lower
  plan's limits: nothing is deleted, only new repositories, members, robots, bytes and pulls are refused.
- `GET /api/v1/tenants/{slug}/billing/usage?period=YYYY-MM`: the month's metered usage (usage_period_get) and
  where the tenant stands against every limit now (owners and admins; not robots or narrowed tokens).
Each representation is its own serializer, so invoices and the payment method join as fields or operations of their own.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.limits import LIMIT_FIELDS, tenant_limits_get
from accounts.models import Membership, Tenant
from billing import locks
from billing.models import Subscription
from billing.payments import provider_get
from billing.selectors import plan_get, plan_list, subscription_get
from billing.services import subscription_change_plan
from billing.standing import KEYS, billing_standing_get, month_start, month_usage_get, period_parse
from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_check
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission, TenantWidePermission
from gateway.core.errors import Conflict

OWNER = frozenset({Membership.Role.OWNER.value})
LIMIT_HELP = "null: unlimited."


PLAN_EXAMPLE = {
    "code": "pro",
    "name": "Pro",
    "monthly_price_minor": 900,
    "currency": "USD",
    "storage_quota_bytes": 50_000_000_000,
    "private_repositories_limit": None,
    "members_limit": 10,
    "robots_limit": 10,
    "pulls_per_window_authenticated": 5000,
    "pulls_per_window_anonymous": 1000,
    "egress_bytes_per_month_limit": 500_000_000_000,
    "storage_overage_minor_per_gb": 10,
    "egress_overage_minor_per_gb": 5,
    "is_active": True,
}


class PlanOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    monthly_price_minor = serializers.IntegerField(help_text="In minor units of `currency` (cents): 900 is 9.00 USD.")
    currency = serializers.CharField(help_text="ISO 4217.")
    storage_quota_bytes = serializers.IntegerField(allow_null=True, help_text=f"Decimal: 1 GB = 10^9 bytes; {LIMIT_HELP}")
    private_repositories_limit = serializers.IntegerField(allow_null=True, help_text=LIMIT_HELP)
    members_limit = serializers.IntegerField(allow_null=True, help_text=LIMIT_HELP)
    robots_limit = serializers.IntegerField(allow_null=True, help_text=LIMIT_HELP)
    pulls_per_window_authenticated = serializers.IntegerField(allow_null=True, help_text=f"Per 6 hours; {LIMIT_HELP}")
    pulls_per_window_anonymous = serializers.IntegerField(allow_null=True, help_text=f"Per address, per 6 hours; {LIMIT_HELP}")
    egress_bytes_per_month_limit = serializers.IntegerField(allow_null=True, help_text=LIMIT_HELP)
    storage_overage_minor_per_gb = serializers.IntegerField(help_text="Per GB beyond the quota; 0: the quota is hard.")
    egress_overage_minor_per_gb = serializers.IntegerField()
    is_active = serializers.BooleanField(help_text="false: keeps its subscribers, takes no new ones.")


class LimitsSerializer(serializers.Serializer):
    """The limits the tenant has now (the plan's, or what operators set without one)."""

    storage_quota_bytes = serializers.IntegerField(allow_null=True)
    private_repositories_limit = serializers.IntegerField(allow_null=True)
    members_limit = serializers.IntegerField(allow_null=True)
    robots_limit = serializers.IntegerField(allow_null=True)
    pulls_per_window_authenticated = serializers.IntegerField(allow_null=True)
    pulls_per_window_anonymous = serializers.IntegerField(allow_null=True)
    egress_bytes_per_month_limit = serializers.IntegerField(allow_null=True)


class SubscriptionOutputSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    plan = PlanOutputSerializer(allow_null=True, help_text="null: no subscription (a self-hosted gateway's tenants).")
    status = serializers.ChoiceField(choices=Subscription.Status.choices, allow_null=True)
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    limits = LimitsSerializer()


def _subscription(tenant: Tenant, subscription: Subscription | None) -> dict[str, Any]:
    """The subscription's representation (GET, the write's response, and what If-Match is compared with)."""
    limits = tenant_limits_get(tenant=tenant).as_fields()
    data: dict[str, Any] = {"tenant": tenant.slug, "limits": limits, "plan": None, "status": None}
    data |= {"current_period_start": None, "current_period_end": None}
    if subscription is not None:
        data |= {
            "plan": subscription.plan,
            "status": subscription.status,
            "current_period_start": subscription.current_period_start,
            "current_period_end": subscription.current_period_end,
        }
    return dict(SubscriptionOutputSerializer(data).data)


class PlanListApi(ApiView):
    """The plans open to new subscribers, cheapest first."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(PlanOutputSerializer):
        pass

    @extend_schema(
        operation_id="plans_list",
        tags=["billing"],
        summary="The plans open to subscribers, cheapest first",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        plans = plan_list(active_only=True)
        return paginate(
            request=request, view=self, queryset=plans, serializer=self.OutputSerializer, ordering=("monthly_price_minor", "code")
        )


class _SubscriptionApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ADMINS, "PUT": OWNER, "PATCH": OWNER}


SUBSCRIPTION_EXAMPLE = OpenApiExample(
    "subscription",
    value={
        "tenant": "acme",
        "plan": PLAN_EXAMPLE,
        "status": "active",
        "current_period_start": "2026-03-01T09:30:00Z",
        "current_period_end": "2026-04-01T09:30:00Z",
        "limits": {name: PLAN_EXAMPLE[name] for name in LIMIT_FIELDS},
    },
    response_only=True,
)


class SubscriptionGetApi(_SubscriptionApi):
    """The tenant's plan, status, current period and limits, with the ETag that changing the plan needs."""

    class OutputSerializer(SubscriptionOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_subscription_get",
        tags=["billing"],
        summary="The tenant's subscription (owners and admins)",
        responses=OutputSerializer,
        examples=[SUBSCRIPTION_EXAMPLE],
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        return etag_response(_subscription(tenant, subscription_get(tenant=tenant)))


class _SubscriptionChangeApi(_SubscriptionApi):
    class InputSerializer(serializers.Serializer):
        plan = serializers.CharField(max_length=32, help_text="The code of an active plan (GET /api/v1/plans).")

        def validate_plan(self, value: str) -> str:
            if plan_get(code=value) is None:
                raise serializers.ValidationError(f"No plan {value!r}; GET /api/v1/plans lists them.")
            return value

    class OutputSerializer(SubscriptionOutputSerializer):
        pass

    def change(self, request: Request) -> Response:
        """Move the tenant to the body's plan after If-Match matched the locked subscription; the new representation."""
        tenant = request.tenant  # type: ignore[attr-defined]
        provider = provider_get()
        if provider is not None:  # decision 0050: on a gateway that takes payments, no plan without paying for it
            raise Conflict(f"This gateway takes payments ({provider.name}): change the plan on the billing page's checkout.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            # The service's own lock, taken first: nobody changes the subscription between the check and the write.
            if_match_check(request, _subscription(tenant, locks.subscription_lock(tenant=tenant)))
            subscription = subscription_change_plan(
                tenant=tenant, plan_code=serializer.validated_data["plan"], actor=self.actor()
            )
            data = _subscription(tenant, subscription)
        return etag_response(data)


CHANGE_DOC = (
    "Moves the tenant to another active plan (starting a subscription if it has none) and writes the plan's limits; "
    "audited. Changing to the current plan changes nothing. A downgrade deletes nothing: what is past the lower "
    "limits stays, new repositories, members, robots, bytes and pulls are refused. On a gateway that takes payments "
    "(Stripe or bank transfer) this is 409: plans change through the provider's checkout, never without paying."
)


class SubscriptionSetApi(_SubscriptionChangeApi):
    """Change the tenant's plan (PUT); If-Match."""

    @extend_schema(
        operation_id="tenant_subscription_set",
        tags=["billing"],
        summary="Change the tenant's plan (owners)",
        description=CHANGE_DOC,
        parameters=[IF_MATCH],
        request=_SubscriptionChangeApi.InputSerializer,
        responses=_SubscriptionChangeApi.OutputSerializer,
        examples=[OpenApiExample("upgrade", value={"plan": "pro"}, request_only=True), SUBSCRIPTION_EXAMPLE],
    )
    def put(self, request: Request, slug: str) -> Response:
        return self.change(request)


class SubscriptionUpdateApi(_SubscriptionChangeApi):
    """Change the tenant's plan (PATCH, the same as PUT: the plan is the one field that changes); If-Match."""

    @extend_schema(
        operation_id="tenant_subscription_update",
        tags=["billing"],
        summary="Change the tenant's plan (owners; the same as PUT)",
        description=CHANGE_DOC,
        parameters=[IF_MATCH],
        request=_SubscriptionChangeApi.InputSerializer,
        responses=_SubscriptionChangeApi.OutputSerializer,
        examples=[OpenApiExample("downgrade", value={"plan": "free"}, request_only=True), SUBSCRIPTION_EXAMPLE],
    )
    def patch(self, request: Request, slug: str) -> Response:
        return self.change(request)


class StandingSerializer(serializers.Serializer):
    key = serializers.ChoiceField(choices=list(KEYS), help_text="pulls: authenticated, in the current 6-hour window.")
    used = serializers.IntegerField(
        allow_null=True, help_text="null: not counted (unlimited pulls are not counted) or not readable right now."
    )
    limit = serializers.IntegerField(allow_null=True, help_text=LIMIT_HELP)
    unit = serializers.ChoiceField(choices=["bytes", "count"])


class RepositoryUsageSerializer(serializers.Serializer):
    repository = serializers.CharField(help_text="By name, as metered (it may have been deleted since).")
    pulls = serializers.IntegerField()
    egress_proxied_bytes = serializers.IntegerField()
    egress_redirect_bytes = serializers.IntegerField()
    egress_bytes = serializers.IntegerField()
    storage_byte_hours = serializers.IntegerField(help_text="Shared blobs count in each repository that links them.")
    storage_gb_hours = serializers.DecimalField(max_digits=40, decimal_places=9)


class MonthField(serializers.CharField):
    """A UTC month as YYYY-MM that has begun (billing.standing.period_parse, the one month parser) → its first instant."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 7)
        super().__init__(**kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        value = super().run_validation(data)  # the string, its length checked
        if value is None:
            return None
        try:
            return period_parse(value, now=timezone.now())
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class BillingUsageGetApi(ApiView):
    """A UTC month's metered usage (pulls, egress, storage GB-hours, in all and per repository) and where the tenant
    stands now against every limit (pulls: the current 6-hour window; egress: the current month)."""

    permission_classes = [*ApiView.permission_classes, TenantMemberPermission, TenantWidePermission]
    tenant_roles = {"GET": ADMINS}

    class FilterSerializer(serializers.Serializer):
        period = MonthField(required=False, help_text="A UTC month, YYYY-MM; default the current one.")

    class OutputSerializer(serializers.Serializer):
        period = serializers.CharField(help_text="YYYY-MM.")
        start = serializers.DateTimeField()
        end = serializers.DateTimeField(help_text="Excluded: the month's end, or the end of the current hour while it runs.")
        pulls = serializers.IntegerField(help_text="Manifest GETs that are pulls (an index GET is not).")
        egress_proxied_bytes = serializers.IntegerField()
        egress_redirect_bytes = serializers.IntegerField(help_text="Presigned redirects, at the blob's size.")
        egress_bytes = serializers.IntegerField()
        storage_byte_hours = serializers.IntegerField(help_text="Hourly samples of the stored bytes (each blob once).")
        storage_gb_hours = serializers.DecimalField(max_digits=40, decimal_places=9, help_text="Decimal GB (10^9 bytes).")
        hours_sampled = serializers.IntegerField(help_text="Hours with a storage sample (an hour without one bills none).")
        repositories = RepositoryUsageSerializer(many=True)
        limits = StandingSerializer(many=True, help_text="Where the tenant stands now against each limit.")

    @extend_schema(
        operation_id="tenant_billing_usage_get",
        tags=["billing"],
        summary="A month's metered usage and the tenant's standing against its limits (owners and admins)",
        parameters=[FilterSerializer],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = timezone.now()
        current = month_start(now)
        start = query.validated_data.get("period") or current
        usage = month_usage_get(tenant=tenant, start=start, now=now)
        this_month = usage if start == current else month_usage_get(tenant=tenant, start=current, now=now)
        data = {
            **usage,
            "period": f"{start:%Y-%m}",
            "limits": billing_standing_get(tenant=tenant, egress_bytes=this_month["egress_bytes"]),
        }
        return Response(self.OutputSerializer(data).data)
