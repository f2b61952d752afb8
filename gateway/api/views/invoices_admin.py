"""Platform operators' invoices of a tenant (staff, decision 0051): every invoice, void one, credit a month.

- `GET /api/v1/admin/tenants/{slug}/invoices[?period=YYYY-MM&status=&lines=true]`: drafts too, newest month first.
- `POST /api/v1/admin/tenants/{slug}/invoices/{number}/void` {reason}: billing.invoicing.invoice_void (an open
  invoice; idempotent; a paid one is 409: it is credited instead).
- `POST /api/v1/admin/tenants/{slug}/credits` {amount_minor, description, period?, currency?}:
  billing.invoicing.invoice_credit_add → 201 with the draft it landed on (409 if that month is issued).
Staff only (StaffApiView), any tenant status; both writes are audited by the services. POSTs take Idempotency-Key,
so a retried credit is not granted twice.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Tenant
from accounts.selectors import tenant_get_any_status
from billing.invoicing import MAX_CREDIT_MINOR, MAX_DESCRIPTION, MAX_VOID_REASON, invoice_credit_add, invoice_void
from billing.models import Invoice
from billing.selectors import invoice_get, invoice_list
from gateway.api.base import StaffApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.views.admin_tenants import admin_schema
from gateway.api.views.billing import MonthField
from gateway.api.views.invoices import MINOR, InvoiceLineSerializer
from gateway.core.errors import NotFound

INVOICE_EXAMPLE = {
    "id": 41,
    "number": None,
    "status": "draft",
    "period_start": "2026-04-01T00:00:00Z",
    "period_end": "2026-05-01T00:00:00Z",
    "issuer": "WHARF",
    "billed_to": "",
    "currency": "USD",
    "subtotal_minor": 0,
    "total_minor": 0,
    "issued_at": None,
    "paid_at": None,
    "voided_at": None,
    "void_reason": "",
    "lines": [
        {
            "position": 1,
            "kind": "credit",
            "description": "Outage of 3 April",
            "quantity": "1.000000",
            "unit": "credit",
            "unit_price_minor": -500,
            "amount_minor": -500,
        }
    ],
}


class AdminInvoiceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Names a draft, which has no number yet.")
    number = serializers.CharField(allow_null=True, help_text="<issuer>-<sequence>, given at issue; null for a draft.")
    status = serializers.ChoiceField(choices=Invoice.Status.choices)
    period_start = serializers.DateTimeField(help_text="The UTC month billed: its first instant.")
    period_end = serializers.DateTimeField(help_text="Excluded.")
    issuer = serializers.CharField()
    billed_to = serializers.CharField(help_text="The tenant's name and slug when issued ('' for a draft).")
    currency = serializers.CharField(help_text="ISO 4217.")
    subtotal_minor = serializers.IntegerField(help_text=f"{MINOR} The charge lines.")
    total_minor = serializers.IntegerField(help_text=f"{MINOR} Subtotal plus the (negative) credits, never below 0.")
    issued_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    void_reason = serializers.CharField(help_text="Staff's reason ('' unless void); not shown to the tenant.")


class AdminInvoiceWithLinesSerializer(AdminInvoiceOutputSerializer):
    lines = InvoiceLineSerializer(many=True)


def _tenant(slug: str) -> Tenant:
    tenant = tenant_get_any_status(slug=slug)
    if tenant is None:
        raise NotFound(f"No tenant {slug!r}.")
    return tenant


def _with_lines(tenant: Tenant, invoice: Invoice) -> dict[str, Any]:
    """The invoice as the writes answer it: read again with its lines, in order."""
    return AdminInvoiceWithLinesSerializer(invoice_get(tenant=tenant, pk=invoice.pk)).data


class AdminInvoiceListApi(StaffApiView):
    """Every invoice of a tenant, drafts too, newest month first; one month or one status; lines on request."""

    pagination_class = ApiCursorPagination

    class FilterSerializer(serializers.Serializer):
        period = MonthField(required=False, help_text="Only the invoice of this UTC month, YYYY-MM.")
        status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False, help_text="Only invoices in it.")
        lines = serializers.BooleanField(required=False, default=False, help_text="true: each invoice with its lines.")

    class OutputSerializer(AdminInvoiceOutputSerializer):
        lines = InvoiceLineSerializer(many=True, required=False, help_text="With `lines=true` only.")

    @admin_schema(
        "admin_tenant_invoices_list",
        "Every invoice of a tenant, drafts too",
        [FilterSerializer],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        invoices = invoice_list(
            tenant=_tenant(slug),
            include_drafts=True,
            period_start=filters.get("period"),
            status=filters.get("status"),
            with_lines=filters["lines"],
        )
        serializer = self.OutputSerializer if filters["lines"] else AdminInvoiceOutputSerializer
        return paginate(request=request, view=self, queryset=invoices, serializer=serializer, ordering="-period_start")


class AdminInvoiceVoidApi(StaffApiView):
    """Void an open invoice: it keeps its number, nothing is owed on it; idempotent; a paid invoice is 409 (credit
    a later month instead) and a draft, which has no number, 404; audited."""

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=MAX_VOID_REASON, help_text="Why; kept with the invoice and in the audit log.")

    class OutputSerializer(AdminInvoiceWithLinesSerializer):
        pass

    @admin_schema(
        "admin_tenant_invoice_void",
        "Void an open invoice",
        request=InputSerializer,
        responses=OutputSerializer,
        examples=[OpenApiExample("billed twice", value={"reason": "Billed twice for April; see ticket 812."}, request_only=True)],
    )
    def post(self, request: Request, slug: str, number: str) -> Response:
        tenant = _tenant(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice = invoice_void(tenant=tenant, number=number, actor=self.actor(), **serializer.validated_data)
        return Response(_with_lines(tenant, invoice))


class AdminCreditCreateApi(StaffApiView):
    """Credit a tenant: a credit line on its invoice of a month not yet issued (default the current one), a draft
    created if the month has none; the month's total is re-computed (never below 0); audited."""

    class InputSerializer(serializers.Serializer):
        amount_minor = serializers.IntegerField(
            min_value=1, max_value=MAX_CREDIT_MINOR, help_text=f"{MINOR} Positive: it is stored as a negative line."
        )
        description = serializers.CharField(max_length=MAX_DESCRIPTION, help_text="Printed on the invoice.")
        period = MonthField(
            required=False, help_text="The UTC month, YYYY-MM, whose invoice it goes on; default the current one."
        )
        currency = serializers.RegexField(
            r"^[A-Z]{3}$", required=False, help_text="ISO 4217; must be the invoice's (default), needed only without a plan."
        )

    class OutputSerializer(AdminInvoiceWithLinesSerializer):
        pass

    @admin_schema(
        "admin_tenant_credits_create",
        "Credit a tenant on a month's invoice",
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample("outage", value={"amount_minor": 500, "description": "Outage of 3 April"}, request_only=True),
            OpenApiExample("draft", value=INVOICE_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant = _tenant(slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invoice = invoice_credit_add(tenant=tenant, actor=self.actor(), **serializer.validated_data)
        return Response(_with_lines(tenant, invoice), status=status.HTTP_201_CREATED)
