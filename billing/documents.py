"""An invoice as HTML (templates/billing/invoice.html) and as a PDF (fpdf2), and a usage CSV (docs/decisions/0044).

No URLs here: the billing page and the API serve these. The PDF uses fpdf2's built-in Helvetica,
so no font file or system library is needed; it covers Latin-1, and any other character is
printed as "?" (the HTML shows every name as it is).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.template.loader import render_to_string
from fpdf import FPDF

from accounts.models import Tenant
from billing.invoicing import billed_to
from billing.models import Invoice, InvoiceLine, UsageRecord
from billing.models.usage import TENANT_TOTAL
from gateway.core.csv_export import csv_response

# Currencies whose minor unit is not a hundredth (ISO 4217); all others have two decimals.
MINOR_DIGITS = {"BIF": 0, "CLP": 0, "JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3}

USAGE_CSV_HEADER = (
    "hour_utc",
    "repository",
    "pulls",
    "egress_proxied_bytes",
    "egress_redirect_bytes",
    "storage_byte_hours",
    "storage_sampled",
)


def money(amount_minor: int, currency: str) -> str:
    """`amount_minor` minor units as "1,234.56 USD" (a credit shows its minus sign)."""
    digits = MINOR_DIGITS.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole:,}{'.' + str(part).zfill(digits) if digits else ''} {currency}"


def _lines(invoice: Invoice, lines: list[InvoiceLine]) -> list[dict[str, Any]]:
    # A credit is an amount, not a quantity at a price: its row says "Credit" and shows the (negative) amount only.
    return [
        {
            "line": line,
            "credit": line.kind == InvoiceLine.Kind.CREDIT,
            "quantity": "" if line.kind == InvoiceLine.Kind.CREDIT else f"{line.quantity.normalize():f} {line.unit}",
            "unit_price": "" if line.kind == InvoiceLine.Kind.CREDIT else money(line.unit_price_minor, invoice.currency),
            "amount": money(line.amount_minor, invoice.currency),
        }
        for line in lines
    ]


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    """What both renderings show: the invoice, its lines with amounts formatted, the totals (credits summed apart) and,
    for a void invoice, when and that nothing is owed."""
    lines: list[InvoiceLine] = list(invoice.lines.all())
    credits = sum(line.amount_minor for line in lines if line.kind == InvoiceLine.Kind.CREDIT)
    title = f"Invoice {invoice.number}" if invoice.number else f"Draft invoice {invoice.period_start:%Y-%m}"
    void = invoice.status == Invoice.Status.VOID
    return {
        "invoice": invoice,
        "tenant": invoice.tenant,
        "billed_to": invoice.billed_to or billed_to(invoice.tenant),  # a draft: the tenant as it is now
        "title": f"{title} (VOID)" if void else title,
        "void": void,
        "void_notice": f"VOID: voided on {invoice.voided_at:%d %B %Y} UTC. Nothing is owed on this invoice."
        if void and invoice.voided_at
        else "",
        "lines": _lines(invoice, lines),
        "subtotal": money(invoice.subtotal_minor, invoice.currency),
        "credits": money(credits, invoice.currency) if credits else "",
        "total": money(invoice.total_minor, invoice.currency),
    }


def invoice_html(invoice: Invoice, *, request: HttpRequest | None = None, links: dict[str, str] | None = None) -> str:
    """The invoice as a printable HTML page (no inline script or style: the site's CSP forbids them). `links`: where the
    page was opened from and the PDF (`back`, `pdf`: a skip link and a bar, not printed), e.g. the billing page's."""
    return render_to_string("billing/invoice.html", invoice_context(invoice) | {"links": links}, request=request)


def _latin1(text: str) -> str:
    return text.replace("–", "-").replace("—", "-").encode("latin-1", "replace").decode("latin-1")


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as an A4 PDF: issuer, number, tenant, period, VOID boxed in red on a void one, one row per line
    (credits marked), subtotal, credits and total."""
    context = invoice_context(invoice)
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(context["title"]))
    pdf.set_creator("Wharf")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(context["title"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    facts = [
        ("Issuer", invoice.issuer),
        ("Billed to", context["billed_to"]),
        ("Period", f"{invoice.period_start:%d %B %Y} - {invoice.period_end:%d %B %Y} (UTC, end excluded)"),
        ("Status", invoice.status),
    ]
    if invoice.issued_at:
        facts.append(("Issued", f"{invoice.issued_at:%d %B %Y %H:%M} UTC"))
    if invoice.voided_at:
        facts.append(("Voided", f"{invoice.voided_at:%d %B %Y %H:%M} UTC"))
    for label, value in facts:
        pdf.cell(30, 6, label)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    if context["void"]:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 14)
        pdf.set_text_color(170, 0, 0)
        pdf.multi_cell(0, 8, context["void_notice"] or "VOID", border=1, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("Helvetica", size=10)
    pdf.ln(4)
    with pdf.table(col_widths=(100, 32, 29, 29), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")) as table:
        table.row(["Description", "Quantity", "Unit price", "Amount"])
        for row in context["lines"]:
            description = f"Credit: {row['line'].description}" if row["credit"] else row["line"].description
            table.row([_latin1(description), row["quantity"], row["unit_price"], row["amount"]])
    pdf.ln(4)
    totals = [("Subtotal", context["subtotal"]), ("Credits", context["credits"]), ("Total", context["total"])]
    for label, value in totals:
        if not value:
            continue
        pdf.set_font("Helvetica", "B" if label == "Total" else "", 11)
        pdf.cell(161, 7, label, align="R")
        pdf.cell(29, 7, value, align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def usage_csv_rows(*, tenant: Tenant, start: datetime, end: datetime) -> Iterator[tuple[Any, ...]]:
    """The tenant's hourly usage rows from `start` (included) to `end` (excluded), by hour then repository; the
    tenant-wide storage row is named "(all)". Streamed from the database, constant memory."""
    rows = (
        UsageRecord.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
        .order_by("hour", "repository")
        .values_list(
            "hour",
            "repository",
            "pulls",
            "egress_proxied_bytes",
            "egress_redirect_bytes",
            "storage_byte_hours",
            "storage_sampled_at",
        )
    )
    for hour, repository, *figures, sampled_at in rows.iterator(chunk_size=2000):
        yield (hour.isoformat(), repository if repository != TENANT_TOTAL else "(all)", *figures, sampled_at is not None)


def usage_csv_response(*, tenant: Tenant, start: datetime, end: datetime) -> StreamingHttpResponse:
    """A streamed CSV download of the tenant's usage in the period (gateway.core.csv_export: formula-safe cells)."""
    if end <= start:
        raise ValueError("end must be after start")
    return csv_response(
        filename=f"{tenant.slug}-usage-{start:%Y%m%d}-{end:%Y%m%d}.csv",
        header=USAGE_CSV_HEADER,
        rows=usage_csv_rows(tenant=tenant, start=start, end=end),
    )
