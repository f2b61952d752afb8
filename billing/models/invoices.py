"""Invoices (docs/decisions/0044): one per (tenant, calendar month), its lines, and each issuer's number sequence."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from gateway.core.models import TenantOwnedModel, TimeStampedModel


class InvoiceSequence(TimeStampedModel):
    """The next invoice number of one issuer; locked while an invoice is issued, so numbers are gapless and in order."""

    issuer = models.CharField(max_length=32, unique=True)
    next_number = models.PositiveBigIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.issuer}: next {self.next_number}"


class Invoice(TenantOwnedModel):
    """What a tenant owes for one UTC calendar month [period_start, period_end).

    A draft may be regenerated (its lines replaced; staff's credit lines stay); issuing it (status open)
    gives it the issuer's next number, and from then on nothing of it changes but its status (paid, or
    void with voided_at and void_reason: it keeps its number, decision 0051) and the payment fields. Amounts are integer minor units of `currency`: subtotal = the sum of the charge lines,
    total = subtotal + credit lines (credits are negative), never below 0.
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    issuer = models.CharField(max_length=32)
    sequence = models.PositiveBigIntegerField(null=True, blank=True)  # the issuer's number, from issuing on
    number = models.CharField(max_length=64, null=True, blank=True, unique=True)  # "<issuer>-<sequence:06d>"
    currency = models.CharField(max_length=3)
    # The tenant's name and slug as they were at issue: a later rename does not rewrite an issued invoice.
    billed_to = models.CharField(max_length=300, blank=True, default="")
    subtotal_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # The payment provider ("stripe", "manual"; "" = none yet) and its invoice/payment id, for the payments slice.
    provider = models.CharField(max_length=32, blank=True, default="")
    provider_id = models.CharField(max_length=255, blank=True, default="")
    voided_at = models.DateTimeField(null=True, blank=True)  # set with status void, only then
    void_reason = models.CharField(max_length=500, blank=True, default="")  # staff's, for the audit trail

    class Meta:
        ordering = ["-period_start", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start"], name="invoice_unique_tenant_period"),
            models.UniqueConstraint(fields=["issuer", "sequence"], name="invoice_unique_issuer_sequence"),
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="invoice_period"),
            models.CheckConstraint(condition=Q(subtotal_minor__gte=0, total_minor__gte=0), name="invoice_non_negative"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False, sequence__isnull=False, issued_at__isnull=False),
                name="invoice_issued_has_number",
            ),
            models.CheckConstraint(
                condition=Q(status="void", voided_at__isnull=False) | (~Q(status="void") & Q(voided_at__isnull=True)),
                name="invoice_void_has_voided_at",
            ),
        ]

    def __str__(self) -> str:
        return f"invoice {self.number or '(draft)'} of tenant {self.tenant_id} for {self.period_start:%Y-%m}"


class InvoiceLine(TimeStampedModel):
    """One line: `quantity` `unit`s at `unit_price_minor` each comes to `amount_minor` (rounded half-up to the minor unit)."""

    class Kind(models.TextChoices):
        BASE = "base"  # a plan in force for the whole month
        PRORATION = "proration"  # a plan in force for part of it
        STORAGE_OVERAGE = "storage_overage"
        EGRESS_OVERAGE = "egress_overage"
        CREDIT = "credit"  # negative; staff's, kept when a draft is regenerated

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=255)
    quantity = models.DecimalField(max_digits=24, decimal_places=6)
    unit = models.CharField(max_length=16)  # "month", "GB-month", "GB"
    unit_price_minor = models.BigIntegerField()
    amount_minor = models.BigIntegerField()

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_unique_position"),
            models.CheckConstraint(
                condition=Q(kind="credit", amount_minor__lte=0) | (~Q(kind="credit") & Q(amount_minor__gte=0)),
                name="invoiceline_sign",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.description} {self.amount_minor}"
