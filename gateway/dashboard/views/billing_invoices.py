"""The billing page's documents (decision 0046's roles: admins and owners read, others 404): an issued invoice as its
printable HTML page and as a PDF download, and a month's hourly usage as CSV. Drafts are not shown (staff's admin has them)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from billing.documents import invoice_html, invoice_pdf, usage_csv_response
from billing.models import Invoice
from billing.selectors import invoice_get
from billing.standing import next_month, period_parse
from gateway.dashboard.access import org_view


def _issued(request: HttpRequest, number: str) -> Invoice:
    invoice = invoice_get(tenant=request.org.tenant, number=number)  # type: ignore[attr-defined]
    if invoice is None or invoice.status == Invoice.Status.DRAFT:
        raise Http404("No such invoice.")
    return invoice


@org_view(min_role=Membership.Role.ADMIN)
def invoice_page(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    """The invoice as billing/invoice.html renders it (its own print stylesheet), not inside the dashboard's layout."""
    invoice = _issued(request, number)
    links = {
        "back": reverse("dashboard:billing", args=[slug]),
        "pdf": reverse("dashboard:billing_invoice_pdf", args=[slug, number]),
    }
    return HttpResponse(invoice_html(invoice, request=request, links=links))


@org_view(min_role=Membership.Role.ADMIN)
def invoice_pdf_download(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    invoice = _issued(request, number)
    response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response


@org_view(min_role=Membership.Role.ADMIN)
def usage_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """`?period=YYYY-MM` (default: the current month): that UTC month's hourly usage rows; a bad period is a 400."""
    now = timezone.now()
    try:
        start = period_parse(request.GET.get("period") or f"{now:%Y-%m}", now=now)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    # A StreamingHttpResponse: org_view's signature names HttpResponse, which Django's handler does not require.
    tenant = request.org.tenant  # type: ignore[attr-defined]
    return usage_csv_response(tenant=tenant, start=start, end=next_month(start))  # type: ignore[return-value]
