"""An invoice as HTML and PDF (read back with pypdf), and the usage CSV (docs/decisions/0044)."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.staticfiles import finders
from pypdf import PdfReader

from accounts.models import Tenant
from billing.documents import USAGE_CSV_HEADER, invoice_html, invoice_pdf, money, usage_csv_response
from billing.invoicing import invoice_generate, invoice_issue
from billing.models import InvoiceLine
from billing.selectors import invoice_get
from tests.billing.invoicing import GB, at, plan_history, usage_add, utc

pytestmark = pytest.mark.django_db

APRIL = utc(2026, 4, 1)


@pytest.fixture
def issued(plans, tenant):
    """Acme's April: Pro, then Team from the 21st, with storage and egress overage on Team."""
    Tenant.objects.filter(pk=tenant.pk).update(name="Acme Ürün 株式会社")
    plan_history(tenant, (utc(2026, 3, 1), "pro"), (utc(2026, 4, 21), "team"))
    usage_add(tenant, start=APRIL, hours=720, stored_bytes=510 * GB, egress={"app": 5100 * GB})
    with at(utc(2026, 5, 1, 1, 13)):
        invoice = invoice_issue(tenant=tenant, period_start=APRIL)
    return invoice_get(tenant=tenant, number=invoice.number)


def test_money_is_formatted_in_the_currencys_minor_unit():
    assert [money(123456, "USD"), money(-1000, "EUR"), money(5, "USD"), money(1500, "JPY"), money(1, "KWD")] == [
        "1,234.56 USD",
        "-10.00 EUR",
        "0.05 USD",
        "1,500 JPY",
        "0.001 KWD",
    ]


def test_the_html_invoice_shows_every_line_and_the_totals_without_inline_code(issued):
    html = invoice_html(issued)
    assert f"<h1>Invoice {issued.number}</h1>" in html and "Acme Ürün 株式会社 (acme)" in html
    assert html.count('<tr class="invoice-line ') == 4
    for line in issued.lines.all():
        assert line.description in html and money(line.amount_minor, "USD") in html
    assert re.search(r'invoice-total.*?<td class="num">' + re.escape(money(issued.total_minor, "USD")), html, re.S)
    assert 'href="/static/css/invoice.css"' in html and finders.find("css/invoice.css")
    assert "<script" not in html and "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)


def test_a_draft_renders_as_a_draft(plans, tenant):
    plan_history(tenant, (utc(2026, 3, 1), "pro"))
    with at(utc(2026, 5, 2)):
        draft = invoice_generate(tenant=tenant, period_start=APRIL)
    html = invoice_html(draft)
    assert "<h1>Draft invoice 2026-04</h1>" in html and "Issued" not in html
    assert "Draft invoice 2026-04" in PdfReader(io.BytesIO(invoice_pdf(draft))).pages[0].extract_text()


def test_the_pdf_reads_back_with_number_lines_and_total(issued):
    data = invoice_pdf(issued)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())  # wrapped cells join with a space
    assert reader.metadata.title == f"Invoice {issued.number}"
    assert issued.number in text and "Acme Ürün ???? (acme)" in text  # Helvetica is Latin-1: the rest prints as "?"
    kinds = [line.kind for line in issued.lines.all()]
    assert kinds == ["proration", "proration", "storage_overage", "egress_overage"]
    for line in issued.lines.all():
        assert line.description.replace("–", "-") in text and money(line.amount_minor, "USD") in text
    assert f"Subtotal {money(issued.subtotal_minor, 'USD')} Total {money(issued.total_minor, 'USD')}" in text
    assert issued.total_minor == sum(line.amount_minor for line in issued.lines.all()) > 0


def test_a_long_invoice_flows_onto_more_pages(issued):
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=issued, position=10 + n, kind="credit", description=f"Credit {n}", quantity=1, unit="credit",
                    unit_price_minor=-1, amount_minor=-1)
        for n in range(80)
    )  # fmt: skip
    reader = PdfReader(io.BytesIO(invoice_pdf(invoice_get(tenant=issued.tenant, pk=issued.pk))))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) > 1 and "Credit 0" in text and "Credit 79" in text


def _csv(response) -> list[list[str]]:
    return [line.split(",") for line in b"".join(response.streaming_content).decode().splitlines()]


def test_the_usage_csv_has_a_header_and_one_row_per_hour_and_repository(plans, tenant):
    usage_add(tenant, start=APRIL, hours=2, stored_bytes=7 * GB, egress={"web": 11, "app": 5})
    usage_add(tenant, start=utc(2026, 5, 1), hours=1, stored_bytes=1)  # outside the period
    response = usage_csv_response(tenant=tenant, start=APRIL, end=utc(2026, 5, 1))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="acme-usage-20260401-20260501.csv"'
    assert _csv(response) == [
        list(USAGE_CSV_HEADER),
        ["2026-04-01T00:00:00+00:00", "(all)", "0", "0", "0", str(7 * GB), "true"],
        ["2026-04-01T00:00:00+00:00", "app", "3", "5", "0", "0", "false"],
        ["2026-04-01T00:00:00+00:00", "web", "3", "11", "0", "0", "false"],
        ["2026-04-01T01:00:00+00:00", "(all)", "0", "0", "0", str(7 * GB), "true"],
    ]


def test_the_usage_csv_is_tenant_scoped_and_refuses_an_empty_range(plans, tenant):
    from tests.factories import make_tenant

    usage_add(make_tenant("globex"), start=APRIL, hours=3, stored_bytes=1)
    assert _csv(usage_csv_response(tenant=tenant, start=APRIL, end=utc(2026, 5, 1))) == [list(USAGE_CSV_HEADER)]
    with pytest.raises(ValueError, match="end must be after start"):
        usage_csv_response(tenant=tenant, start=APRIL, end=APRIL)


def test_an_issued_invoice_keeps_the_name_it_was_billed_to(issued):
    Tenant.objects.filter(pk=issued.tenant_id).update(name="Renamed Ltd")
    invoice = invoice_get(tenant=Tenant.objects.get(pk=issued.tenant_id), number=issued.number)
    assert invoice.billed_to == "Acme Ürün 株式会社 (acme)"
    assert "Acme Ürün 株式会社 (acme)" in invoice_html(invoice) and "Renamed" not in invoice_html(invoice)
    assert "Renamed" not in PdfReader(io.BytesIO(invoice_pdf(invoice))).pages[0].extract_text()


def test_a_void_invoice_says_void_in_html_and_pdf_and_credits_show_as_credits(plans, tenant):
    from billing.invoicing import invoice_credit_add, invoice_void

    plan_history(tenant, (utc(2026, 3, 1), "pro"))
    with at(utc(2026, 4, 20)):
        invoice_credit_add(tenant=tenant, amount_minor=250, description="Outage of 3 April", actor="sam")
    with at(utc(2026, 5, 1, 1, 13)):
        number = invoice_issue(tenant=tenant, period_start=APRIL).number
    invoice = invoice_get(tenant=tenant, number=number)
    html = invoice_html(invoice)
    assert "VOID" not in html and '<span class="invoice-credit-label">Credit:</span> Outage of 3 April' in html
    assert re.search(r'invoice-credits.*?<td class="num">-2\.50 USD', html, re.S)  # subtotal 9.00, credits -2.50, total 6.50
    assert re.search(r'invoice-total.*?<td class="num">6\.50 USD', html, re.S)
    text = " ".join(PdfReader(io.BytesIO(invoice_pdf(invoice))).pages[0].extract_text().split())
    assert "Credit: Outage of 3 April -2.50 USD" in text
    assert "Subtotal 9.00 USD Credits -2.50 USD Total 6.50 USD" in text and "VOID" not in text

    with at(utc(2026, 5, 3, 10)):
        invoice_void(tenant=tenant, number=number, reason="Billed twice (staff only)", actor="sam")
    invoice = invoice_get(tenant=tenant, number=number)
    html = invoice_html(invoice)
    assert f"<h1>Invoice {number} (VOID)</h1>" in html and '<p class="invoice-status invoice-status-void">Void</p>' in html
    assert '<p class="invoice-void-notice" role="note"><strong>VOID</strong>: voided on' in html
    assert "Nothing is owed on this invoice." in html and "3 May 2026" in html
    assert "Billed twice" not in html  # staff's reason is not on the tenant's document
    assert "<script" not in html and "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)
    reader = PdfReader(io.BytesIO(invoice_pdf(invoice)))
    text = " ".join(reader.pages[0].extract_text().split())
    assert reader.metadata.title == f"Invoice {number} (VOID)"
    assert "VOID: voided on 03 May 2026 UTC. Nothing is owed on this invoice." in text
    assert "Voided 03 May 2026 10:00 UTC" in text and "Billed twice" not in text
