"""The billing page's invoices (decision 0046's roles): the list, the upcoming invoice, an invoice as HTML and PDF, the usage CSV."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from billing.documents import USAGE_CSV_HEADER, money
from billing.invoicing import invoice_estimate, invoice_generate
from billing.models import Invoice, InvoiceLine
from billing.services import subscription_start
from tests.billing.invoicing import GB, at, issue_after, plan_history, usage_add, utc
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.dashboard.test_billing import _text
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/billing/"
APRIL = utc(2026, 4, 1)


@pytest.fixture
def issued(tenant):
    """Acme's April on Pro, then Team from the 21st, with storage overage on Team: issued on 1 May."""
    plan_history(tenant, (utc(2026, 3, 1), "pro"), (utc(2026, 4, 21), "team"))
    usage_add(tenant, start=APRIL, hours=24, stored_bytes=5000 * GB, egress={"app": 11})
    return issue_after(tenant, APRIL)


def _state() -> dict:
    return {
        "invoices": list(Invoice.objects.order_by("pk").values()),
        "lines": list(InvoiceLine.objects.order_by("pk").values()),
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_every_document_is_for_admins_and_owners_only(as_caller, issued, caller):
    before = _state()
    client = as_caller(caller)
    responses = {
        "page": client.get(URL),
        "html": client.get(f"{URL}invoices/{issued.number}/"),
        "pdf": client.get(f"{URL}invoices/{issued.number}.pdf"),
        "csv": client.get(f"{URL}usage.csv?period=2026-04"),
    }
    if caller in allowed("admin"):
        assert all(r.status_code == 200 for r in responses.values()), {k: r.status_code for k, r in responses.items()}
        assert issued.number in _text(responses["page"])
    else:
        for response in responses.values():
            assert_denied(response, caller)
    assert _state() == before


def test_the_page_lists_issued_invoices_with_their_links_and_not_drafts(as_caller, issued, tenant):
    with at(utc(2026, 6, 1, 2)):
        draft = invoice_generate(tenant=tenant, period_start=utc(2026, 5, 1))
    response = as_caller("admin").get(URL)
    text = _text(response)
    assert f"{issued.number} 2026-04 {money(issued.total_minor, 'USD')} Open" in text
    page = response.content.decode()
    assert f'href="{URL}invoices/{issued.number}/"' in page and f'href="{URL}invoices/{issued.number}.pdf"' in page
    assert f'href="{URL}usage.csv?period=2026-04"' in page
    assert draft.number is None and "2026-05" not in text.split("Invoices", 1)[1].split("Only owners")[0]
    # A draft has no number: nothing under invoices/ names it, and its pk is no number.
    assert as_caller("owner").get(f"{URL}invoices/{draft.pk}/").status_code == 404


def test_the_html_invoice_is_the_printable_page(as_caller, issued):
    response = as_caller("admin").get(f"{URL}invoices/{issued.number}/")
    text = _text(response)
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert f"Invoice {issued.number}" in text and money(issued.total_minor, "USD") in text
    page = response.content.decode()
    assert "invoice.css" in page and "<script" not in page
    assert f'<a href="{URL}">← Billing</a>' in page and f'href="{URL}invoices/{issued.number}.pdf" download' in page


def test_the_pdf_is_an_attachment_that_reads_back(as_caller, issued):
    response = as_caller("owner").get(f"{URL}invoices/{issued.number}.pdf")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{issued.number}.pdf"'
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert reader.metadata.title == f"Invoice {issued.number}"
    assert f"Total {money(issued.total_minor, 'USD')}" in text


def test_another_tenants_invoice_and_unknown_numbers_are_404(as_caller, users, issued):
    globex = users["other"].memberships.get().tenant
    plan_history(globex, (utc(2026, 3, 1), "pro"))
    theirs = issue_after(globex, APRIL)
    owner = as_caller("owner")
    for path in (f"invoices/{theirs.number}/", f"invoices/{theirs.number}.pdf", "invoices/NOPE-000001/", "invoices/x.pdf"):
        assert owner.get(URL + path).status_code == 404, path
    assert as_caller("other").get(f"/orgs/globex/billing/invoices/{theirs.number}/").status_code == 200


def test_the_usage_csv_is_the_months_hours_with_its_header(as_caller, tenant):
    usage_add(tenant, start=APRIL, hours=2, stored_bytes=7, egress={"web": 11})
    usage_add(tenant, start=utc(2026, 5, 1), hours=1, stored_bytes=1)  # the next month: not in April's file
    usage_add(make_tenant("initech"), start=APRIL, hours=1, stored_bytes=1)  # another tenant's
    response = as_caller("admin").get(f"{URL}usage.csv?period=2026-04")
    assert response["Content-Disposition"] == 'attachment; filename="acme-usage-20260401-20260501.csv"'
    rows = [line.split(",") for line in b"".join(response.streaming_content).decode().splitlines()]
    assert rows[0] == list(USAGE_CSV_HEADER)
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("2026-04-01T00:00:00+00:00", "(all)"),
        ("2026-04-01T00:00:00+00:00", "web"),
        ("2026-04-01T01:00:00+00:00", "(all)"),
    ]


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("2026-13", "A month as YYYY-MM"),
        ("april", "A month as YYYY-MM"),
        ("1999-01", "A month as YYYY-MM"),
        ("2999-01", "not begun"),
    ],
)
def test_a_bad_period_is_a_clear_400(as_caller, period, message):
    response = as_caller("admin").get(f"{URL}usage.csv?period={period}")
    assert response.status_code == 400 and message in response.content.decode()


def test_the_upcoming_invoice_shows_the_estimates_lines_and_total(as_caller, tenant):
    assert "No invoice is coming: acme has no plan." in _text(as_caller("admin").get(URL))
    subscription_start(tenant=tenant, plan_code="pro")
    estimate = invoice_estimate(tenant=tenant)
    text = _text(as_caller("admin").get(URL))
    section = text.split("Upcoming invoice", 1)[1].split("Invoices", 1)[0]
    for line in estimate.lines:
        assert line.description in section and money(line.amount_minor, estimate.currency) in section
    assert f"Total so far {money(estimate.total_minor, estimate.currency)}" in section


def test_the_upcoming_invoice_shows_this_months_credits_and_a_void_invoice_is_listed_as_void(as_caller, issued, tenant):
    from billing.invoicing import invoice_credit_add, invoice_void

    invoice_void(tenant=tenant, number=issued.number, reason="Billed twice", actor="sam")
    with at(utc(2026, 5, 10)):
        invoice_credit_add(tenant=tenant, amount_minor=700, description="Outage of 3 May", actor="sam")
        text = _text(as_caller("admin").get(URL))
    section = text.split("Upcoming invoice", 1)[1].split("Invoices", 1)[0]
    # Team all May (49.00) less the credit: the estimate shows the line and the total after it.
    assert f"Credit: Outage of 3 May {money(-700, 'USD')}" in section and f"Total so far {money(4200, 'USD')}" in section
    assert f"{issued.number} 2026-04 {money(issued.total_minor, 'USD')} Void" in text


def test_queries_are_constant_over_invoices(as_caller, issued, tenant):
    client = as_caller("owner")
    client.get(URL)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for month in (5, 6, 7):
        issue_after(tenant, utc(2026, month, 1))
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
