"""Invoices in the admin API: list, one with its lines, the PDF (owners and admins; nothing changed on denial)."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from accounts.models import Membership
from billing.documents import money
from billing.invoicing import invoice_generate
from billing.models import Invoice, InvoiceLine
from tests.api.callers import DENIED, caller
from tests.api.conftest import assert_problem, snapshot
from tests.billing.invoicing import GB, at, issue_after, plan_history, usage_add, utc
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db
LIST = "/api/v1/tenants/acme/invoices"
APRIL = utc(2026, 4, 1)


@pytest.fixture
def issued(acme) -> Invoice:
    """Acme's April: Pro, then Team from the 21st, storage overage on Team; issued on 1 May."""
    plan_history(acme, (utc(2026, 3, 1), "pro"), (utc(2026, 4, 21), "team"))
    usage_add(acme, start=APRIL, hours=24, stored_bytes=5000 * GB, egress={"app": 11})
    return issue_after(acme, APRIL)


def state() -> dict:
    return {
        **snapshot(),
        "invoices": list(Invoice.objects.order_by("pk").values()),
        "lines": list(InvoiceLine.objects.order_by("pk").values()),
    }


@pytest.mark.parametrize(("who", "status"), [*DENIED, ("reader", 403), ("writer", 403), ("admin", 200), ("owner", 200)])
def test_access_matrix_and_nothing_changed_on_denial(request, issued, who, status):
    api = caller(request, issued.tenant, who, ["api:read"])
    before = state()
    paths = (LIST, f"{LIST}/{issued.number}", f"{LIST}/{issued.number}.pdf")
    for path in paths:
        response = api.get(path)
        if status == 200:
            assert response.status_code == 200, (path, response.content)
        else:
            body = assert_problem(response, status)
            assert "lines" not in body and "total_minor" not in body
    assert state() == before


def test_the_list_is_the_issued_invoices_newest_first_in_cursor_pages(acme, issued, api_read):
    for month in (5, 6):
        issue_after(acme, utc(2026, month, 1))
    with at(utc(2026, 8, 1, 2)):
        invoice_generate(tenant=acme, period_start=utc(2026, 7, 1))  # a draft: not listed
    first = api_read.get(LIST, limit=2).json()
    assert [i["period_start"] for i in first["results"]] == ["2026-06-01T00:00:00Z", "2026-05-01T00:00:00Z"]
    second = api_read.client.get(first["next"], **api_read.headers).json()
    assert [i["number"] for i in second["results"]] == [issued.number] and second["next"] is None
    item = second["results"][0]
    assert item["status"] == "open" and item["total_minor"] == issued.total_minor and item["currency"] == "USD"
    assert item["billed_to"] == issued.billed_to and "lines" not in item


def test_one_invoice_has_its_lines_in_order(issued, api_read):
    body = api_read.get(f"{LIST}/{issued.number}").json()
    assert body["number"] == issued.number and body["subtotal_minor"] == issued.subtotal_minor
    assert [(line["position"], line["kind"], line["amount_minor"]) for line in body["lines"]] == [
        (line.position, line.kind, line.amount_minor) for line in issued.lines.order_by("position")
    ]
    assert sum(line["amount_minor"] for line in body["lines"]) == body["total_minor"] > 0
    assert body["lines"][0]["quantity"] == f"{issued.lines.order_by('position')[0].quantity:.6f}"


def test_the_pdf_is_an_attachment_that_reads_back(issued, api_read):
    response = api_read.get(f"{LIST}/{issued.number}.pdf")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{issued.number}.pdf"'
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert reader.metadata.title == f"Invoice {issued.number}" and f"Total {money(issued.total_minor, 'USD')}" in text


def test_drafts_other_tenants_and_unknown_numbers_are_404(acme, issued, api_read):
    globex = make_tenant("globex")
    plan_history(globex, (utc(2026, 3, 1), "pro"))
    theirs = issue_after(globex, APRIL)
    with at(utc(2026, 6, 1, 2)):
        draft = invoice_generate(tenant=acme, period_start=utc(2026, 5, 1))
    for number in (theirs.number, "NOPE-000001", str(draft.pk), "x"):
        for path in (f"{LIST}/{number}", f"{LIST}/{number}.pdf"):
            assert_problem(api_read.get(path), 404)


def test_a_robot_or_a_narrowed_token_of_an_admin_cannot_read_them(request, issued):
    for who in ("robot", "narrowed"):
        assert_problem(caller(request, issued.tenant, who, ["api:read"]).get(LIST), 403)
    assert caller(request, issued.tenant, Membership.Role.ADMIN, ["api:read"]).get(LIST).status_code == 200


def test_queries_are_constant_over_invoices_and_lines(acme, issued, api_read):
    api_read.get(LIST)  # the token's first use records it
    with CaptureQueriesContext(connection) as few:
        assert api_read.get(LIST).status_code == 200
        assert api_read.get(f"{LIST}/{issued.number}").status_code == 200
    for month in (5, 6, 7):
        last = issue_after(acme, utc(2026, month, 1))
    with CaptureQueriesContext(connection) as many:
        assert api_read.get(LIST).status_code == 200
        assert api_read.get(f"{LIST}/{last.number}").status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)
