"""Plans (data, edited by staff) and each tenant's subscription to one (docs/decisions/0039)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts.limits import LIMIT_FIELDS, TenantLimits
from gateway.core.models import TimeStampedModel


class Plan(TimeStampedModel):
    """A plan: its price and every limit it writes to its tenants (None = unlimited)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    # In minor units (cents) of `currency`, so no float ever touches money.
    monthly_price_minor = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="USD")
    storage_quota_bytes = models.BigIntegerField(null=True, blank=True)
    private_repositories_limit = models.PositiveIntegerField(null=True, blank=True)
    members_limit = models.PositiveIntegerField(null=True, blank=True)
    robots_limit = models.PositiveIntegerField(null=True, blank=True)
    pulls_per_window_authenticated = models.PositiveIntegerField(null=True, blank=True)
    pulls_per_window_anonymous = models.PositiveIntegerField(null=True, blank=True)
    egress_bytes_per_month_limit = models.BigIntegerField(null=True, blank=True)
    # Per GB (10^9 bytes) beyond the included amount, in minor units; 0 = no overage (the limit is hard).
    storage_overage_minor_per_gb = models.PositiveIntegerField(default=0)
    egress_overage_minor_per_gb = models.PositiveIntegerField(default=0)
    # Inactive plans keep their subscribers but take no new ones.
    is_active = models.BooleanField(default=True)
    # The Stripe Price (price_…) Checkout sells this plan as; blank: not sold through Stripe (decision 0045).
    stripe_price_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["monthly_price_minor", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(storage_quota_bytes__isnull=True) | Q(storage_quota_bytes__gte=0), name="plan_storage_quota_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(egress_bytes_per_month_limit__isnull=True) | Q(egress_bytes_per_month_limit__gte=0),
                name="plan_egress_limit_gte_0",
            ),
            models.UniqueConstraint(
                fields=["stripe_price_id"], condition=~Q(stripe_price_id=""), name="plan_unique_stripe_price"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def limits(self) -> TenantLimits:
        """The plan's limits as the value accounts.services.tenant_limits_set writes."""
        return TenantLimits(**{name: getattr(self, name) for name in LIMIT_FIELDS})


class Subscription(TimeStampedModel):
    """A tenant's subscription to a plan: one per tenant."""

    class Status(models.TextChoices):
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        CANCELED = "canceled"
        SUSPENDED = "suspended"

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    # The payment provider ("" until one is used; "stripe", "manual") and its ids, for the payments slice.
    provider = models.CharField(max_length=32, blank=True, default="")
    provider_customer_id = models.CharField(max_length=255, blank=True, default="")
    provider_subscription_id = models.CharField(max_length=255, blank=True, default="")
    # Payments (decision 0045): when the subscription became past_due (dunning suspends GATEWAY_BILLING_GRACE_DAYS
    # later; None when not past_due), and the time of the newest provider event applied (older ones never go back).
    past_due_since = models.DateTimeField(null=True, blank=True)
    provider_state_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start")), name="subscription_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} on {self.plan_id} ({self.status})"


class SubscriptionPlanInterval(TimeStampedModel):
    """One stretch of time a tenant's subscription was on one plan: [started_at, ended_at), ended_at NULL while in force.

    Written only by billing.services.subscription_start (opens the first) and subscription_change_plan
    (closes the open one and opens the next at the same instant), in their transaction, so invoices
    prorate from these rows and never from the audit log (docs/decisions/0044). At most one is open.
    """

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="plan_intervals")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription"], condition=Q(ended_at__isnull=True), name="planinterval_one_open_per_subscription"
            ),
            models.UniqueConstraint(fields=["tenant", "started_at"], name="planinterval_unique_tenant_start"),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")), name="planinterval_order"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "started_at"], name="planinterval_tenant_start_idx")]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} on {self.plan_id} from {self.started_at:%Y-%m-%d %H:%M:%S}"
