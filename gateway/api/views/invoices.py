"""A tenant's issued invoices in the admin API (decisions 0044, 0046): list, one with its lines, its PDF.

- `GET /api/v1/tenants/{slug}/invoices`: issued invoices, newest month first (cursor pages).
- `GET /api/v1/tenants/{slug}/invoices/{number}`: one, with its lines.
- `GET /api/v1/tenants/{slug}/invoices/{number}.pdf`: the PDF (billing.documents.invoice_pdf), as the billing page's.
Owners and admins, not robots or repository-narrowed tokens (an invoice covers the whole tenant), as the billing usage.
Drafts are not the tenant's yet (staff see them in the admin): a draft's number does not exist, so it is 404.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Tenant
from billing.documents import invoice_pdf
from billing.models import Invoice, InvoiceLine
from billing.selectors import invoice_get, invoice_list
from gateway.api.base import ApiView, paginate
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, TenantMemberPermission, TenantWidePermission
from gateway.core.errors import NotFound

MINOR = "In minor units of `currency` (cents for USD)."
ISSUED_STATUSES = [s for s in Invoice.Status.values if s != Invoice.Status.DRAFT]  # what the API shows: drafts are not


class PdfRenderer(JSONRenderer):
    """Lets `Accept: application/pdf` through DRF's content negotiation; the view answers the PDF itself.
    Errors on such a request are still problem+json bodies."""

    media_type = "application/pdf"
    format = "pdf"


class InvoiceOutputSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="<issuer>-<sequence>, unique on this gateway.")
    status = serializers.ChoiceField(choices=ISSUED_STATUSES)
    period_start = serializers.DateTimeField(help_text="The UTC month billed: its first instant.")
    period_end = serializers.DateTimeField(help_text="Excluded.")
    issuer = serializers.CharField()
    billed_to = serializers.CharField(help_text="The tenant's name and slug when issued.")
    currency = serializers.CharField(help_text="ISO 4217.")
    subtotal_minor = serializers.IntegerField(help_text=MINOR)
    total_minor = serializers.IntegerField(help_text=MINOR)
    issued_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True, help_text="When staff voided it (status void): nothing is owed.")


class InvoiceLineSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=InvoiceLine.Kind.choices)
    description = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)
    unit = serializers.CharField(help_text='"month", "GB-month" or "GB".')
    unit_price_minor = serializers.IntegerField(help_text=MINOR)
    amount_minor = serializers.IntegerField(help_text=f"{MINOR} A credit is negative.")


class _InvoiceApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission, TenantWidePermission]
    tenant_roles = {"GET": ADMINS}

    @staticmethod
    def issued(tenant: Tenant, number: str) -> Invoice:
        invoice = invoice_get(tenant=tenant, number=number)
        if invoice is None or invoice.status == Invoice.Status.DRAFT:
            raise NotFound(f"No invoice {number!r}.")
        return invoice


class InvoiceListApi(_InvoiceApi):
    """The tenant's issued invoices, newest month first."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(InvoiceOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_invoices_list",
        tags=["billing"],
        summary="The tenant's issued invoices, newest first (owners and admins)",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        invoices = invoice_list(tenant=request.tenant)  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=invoices, serializer=self.OutputSerializer, ordering="-period_start")


class InvoiceGetApi(_InvoiceApi):
    """One issued invoice with its lines, in order."""

    class OutputSerializer(InvoiceOutputSerializer):
        lines = InvoiceLineSerializer(many=True)

    @extend_schema(
        operation_id="tenant_invoice_get",
        tags=["billing"],
        summary="One invoice with its lines (owners and admins)",
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str, number: str) -> Response:
        invoice = self.issued(request.tenant, number)  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(invoice).data)


class InvoicePdfApi(_InvoiceApi):
    """One issued invoice as an A4 PDF (a download: Content-Disposition attachment)."""

    renderer_classes = [PdfRenderer]

    @extend_schema(
        operation_id="tenant_invoice_pdf",
        tags=["billing"],
        summary="One invoice as PDF (owners and admins)",
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The invoice as a PDF file.")},
    )
    def get(self, request: Request, slug: str, number: str) -> HttpResponse:
        invoice = self.issued(request.tenant, number)  # type: ignore[attr-defined]
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
        return response
