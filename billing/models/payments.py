"""Payments (docs/decisions/0045): each provider event once, and bank transfers staff confirm."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from gateway.core.models import TenantOwnedModel, TimeStampedModel


class ProviderEvent(TimeStampedModel):
    """A webhook event a payment provider sent, stored once per (provider, event id): a replay finds it and changes nothing.

    `outcome` says what it did: applied; stale (older than the state already applied, so only recorded);
    ignored (not ours, or a type Wharf does not act on).
    """

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        STALE = "stale"
        IGNORED = "ignored"

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True, default="")  # the event's data.object id
    occurred_at = models.DateTimeField()  # the event's `created`
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="providerevent_unique_provider_event")]
        indexes = [models.Index(fields=["provider", "object_id", "event_type"], name="providerevent_object_idx")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id} ({self.outcome})"


class ManualPayment(TenantOwnedModel):
    """A bank transfer for one period of a plan: requested when the tenant subscribes, paid when staff confirm it.

    The tenant quotes `reference` on the transfer. At most one request is open per tenant (a new request replaces
    the plan of the open one).
    """

    class Status(models.TextChoices):
        REQUESTED = "requested"
        PAID = "paid"

    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    reference = models.CharField(max_length=64, unique=True)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    requested_by = models.CharField(max_length=150, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    marked_by = models.CharField(max_length=150, blank=True, default="")
    bank_reference = models.CharField(max_length=255, blank=True, default="")  # what staff saw on the statement
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(status="requested"), name="manualpayment_one_open_request_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.status})"
