"""Staff's invoices in the admin API (decision 0051): every invoice incl. drafts, void, credit; nothing changed on denial."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Membership
from billing.invoicing import invoice_credit_add, invoice_generate
from billing.models import Invoice, InvoiceLine, InvoiceSequence
from tests.api.callers import caller
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.billing.invoicing import at, issue_after, lines_of, plan_history, utc
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db
ADMIN = "/api/v1/admin/tenants/acme"
MARCH, APRIL, MAY = utc(2026, 3, 1), utc(2026, 4, 1), utc(2026, 5, 1)
NOW = utc(2026, 5, 10, 12)  # May is running: April and March are issued


def state() -> dict:
    return {
        **snapshot(),
        "invoices": list(Invoice.objects.order_by("pk").values()),
        "lines": list(InvoiceLine.objects.order_by("pk").values()),
        "sequences": list(InvoiceSequence.objects.order_by("pk").values()),
    }


@pytest.fixture
def billed(acme) -> dict[str, Invoice]:
    """Acme on Pro since February: March issued and paid, April issued (open)."""
    plan_history(acme, (utc(2026, 2, 1), "pro"))
    march = issue_after(acme, MARCH)
    Invoice.objects.filter(pk=march.pk).update(status="paid", paid_at=march.issued_at)
    return {"march": Invoice.objects.get(pk=march.pk), "april": issue_after(acme, APRIL)}


@pytest.fixture(autouse=True)
def _now():
    with at(NOW):
        yield


def _calls(billed: dict[str, Invoice]) -> list[tuple[str, str, dict | None]]:
    number = billed["april"].number
    return [
        ("get", f"{ADMIN}/invoices", None),
        ("post", f"{ADMIN}/invoices/{number}/void", {"reason": "Billed twice"}),
        ("post", f"{ADMIN}/credits", {"amount_minor": 500, "description": "Outage"}),
    ]


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 401),
        ("revoked", 401),
        ("expired", 401),
        ("registry_only", 403),
        ("robot", 403),
        ("narrowed", 403),
        (Membership.Role.OWNER, 403),
        (Membership.Role.ADMIN, 403),
        (Membership.Role.WRITER, 403),
        (Membership.Role.READER, 403),
        ("outsider", 403),
        ("other_owner", 403),
    ],
)
def test_only_staff_and_denial_changes_nothing(request, acme, billed, who, status):
    api = caller(request, acme, who)
    before = state()
    for method, path, body in _calls(billed):
        response = api.get(path) if method == "get" else api.post(path, body)
        problem = assert_problem(response, status)
        assert "lines" not in problem and "total_minor" not in problem
    assert state() == before


def test_a_staff_token_without_the_admin_scope_is_refused(acme, billed):
    api = Api(token(UserFactory(username="sid", is_staff=True), ["api:read", "api:write"]))
    before = state()
    for method, path, body in _calls(billed):
        assert_problem(api.get(path) if method == "get" else api.post(path, body), 403)
    assert state() == before


def test_staff_do_all_three(staff, acme, billed):
    assert staff.get(f"{ADMIN}/invoices").status_code == 200
    number = billed["april"].number
    assert staff.post(f"{ADMIN}/invoices/{number}/void", {"reason": "Billed twice"}).status_code == 200
    assert staff.post(f"{ADMIN}/credits", {"amount_minor": 500, "description": "Outage"}).status_code == 201


# -- list -----------------------------------------------------------------------------------------------------------------


def test_the_list_has_every_invoice_drafts_too_newest_month_first(staff, acme, billed):
    invoice_credit_add(tenant=acme, amount_minor=300, description="Outage", actor="sam")  # May's draft
    body = staff.get(f"{ADMIN}/invoices").json()
    assert [(i["period_start"][:7], i["status"], i["number"]) for i in body["results"]] == [
        ("2026-05", "draft", None),
        ("2026-04", "open", billed["april"].number),
        ("2026-03", "paid", billed["march"].number),
    ]
    draft = body["results"][0]
    assert "lines" not in draft and draft["id"] == Invoice.objects.get(period_start=MAY).pk
    assert (draft["total_minor"], draft["issued_at"], draft["voided_at"], draft["void_reason"]) == (0, None, None, "")
    with_lines = staff.get(f"{ADMIN}/invoices", lines="true").json()["results"]
    assert [line["amount_minor"] for line in with_lines[0]["lines"]] == [-300]
    assert [line["kind"] for line in with_lines[1]["lines"]] == ["base"]


def test_the_list_filters_by_month_and_status_in_cursor_pages(staff, acme, billed):
    assert [i["number"] for i in staff.get(f"{ADMIN}/invoices", period="2026-03").json()["results"]] == [billed["march"].number]
    assert staff.get(f"{ADMIN}/invoices", period="2025-01").json()["results"] == []
    assert [i["number"] for i in staff.get(f"{ADMIN}/invoices", status="open").json()["results"]] == [billed["april"].number]
    first = staff.get(f"{ADMIN}/invoices", limit=1).json()
    second = staff.client.get(first["next"], **staff.headers).json()
    assert [i["number"] for i in first["results"] + second["results"]] == [billed["april"].number, billed["march"].number]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "2026-13"}, "period"),
        ({"period": "2026-3"}, "period"),
        ({"period": "2999-01"}, "period"),
        ({"status": "gone"}, "status"),
        ({"lines": "maybe"}, "lines"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(staff, acme, billed, params, field):
    problem = assert_problem(staff.get(f"{ADMIN}/invoices", **params), 400)
    assert [e["field"] for e in problem["errors"]] == [field]


def test_another_tenant_is_not_in_acmes_list_and_an_unknown_tenant_is_404(staff, acme, billed):
    globex = make_tenant("globex")
    plan_history(globex, (utc(2026, 2, 1), "team"))
    theirs = issue_after(globex, APRIL)
    numbers = [i["number"] for i in staff.get(f"{ADMIN}/invoices").json()["results"]]
    assert theirs.number not in numbers and len(numbers) == 2
    before = state()
    for method, path, body in _calls(billed):
        path = path.replace("/acme/", "/nope/")
        assert_problem(staff.get(path) if method == "get" else staff.post(path, body), 404)
    assert state() == before


# -- void -----------------------------------------------------------------------------------------------------------------


def test_voiding_an_open_invoice_then_again_is_one_void(staff, acme, billed):
    number = billed["april"].number
    response = staff.post(f"{ADMIN}/invoices/{number}/void", {"reason": "Billed twice"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["number"], body["status"], body["void_reason"]) == (number, "void", "Billed twice")
    assert body["voided_at"] == "2026-05-10T12:00:00Z" and [line["kind"] for line in body["lines"]] == ["base"]
    before = state()
    again = staff.post(f"{ADMIN}/invoices/{number}/void", {"reason": "Another"})
    assert again.status_code == 200 and again.json() == body
    assert state() == before
    assert AuditEvent.objects.filter(action="invoice.void", target=number, actor="sam").count() == 1


def test_the_tenant_sees_the_void_status_but_not_staffs_reason(staff, acme, billed, owner):
    number = billed["april"].number
    staff.post(f"{ADMIN}/invoices/{number}/void", {"reason": "Billed twice"})
    api = Api(token(owner, ["api:read"]))
    listed = {i["number"]: i for i in api.get("/api/v1/tenants/acme/invoices").json()["results"]}
    assert (listed[number]["status"], listed[number]["voided_at"]) == ("void", "2026-05-10T12:00:00Z")
    one = api.get(f"/api/v1/tenants/acme/invoices/{number}").json()
    assert one["status"] == "void" and "void_reason" not in one
    assert listed[billed["march"].number]["voided_at"] is None


def test_a_paid_invoice_is_409_saying_it_is_credited_instead(staff, acme, billed):
    before = state()
    problem = assert_problem(staff.post(f"{ADMIN}/invoices/{billed['march'].number}/void", {"reason": "Refund"}), 409)
    assert "a paid invoice is not voided but credited" in problem["detail"]
    assert state() == before


def test_a_draft_another_tenants_invoice_and_unknown_numbers_are_404(staff, acme, billed):
    globex = make_tenant("globex")
    plan_history(globex, (utc(2026, 2, 1), "team"))
    theirs = issue_after(globex, APRIL)
    draft = invoice_credit_add(tenant=acme, amount_minor=100, description="x", actor="sam")
    before = state()
    for number in (theirs.number, str(draft.pk), "WHARF-999999", "x"):
        assert_problem(staff.post(f"{ADMIN}/invoices/{number}/void", {"reason": "r"}), 404)
    assert state() == before


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": ["a"]}])
def test_a_void_without_a_good_reason_is_400_and_changes_nothing(staff, acme, billed, body):
    before = state()
    problem = assert_problem(staff.post(f"{ADMIN}/invoices/{billed['april'].number}/void", body), 400)
    assert [e["field"] for e in problem["errors"]] == ["reason"]
    assert state() == before


# -- credits --------------------------------------------------------------------------------------------------------------


def test_a_credit_lands_on_the_current_months_draft_and_201_shows_it(staff, acme, billed):
    response = staff.post(f"{ADMIN}/credits", {"amount_minor": 500, "description": "Outage of 3 May"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["number"], body["period_start"], body["currency"]) == (
        "draft",
        None,
        "2026-05-01T00:00:00Z",
        "USD",
    )
    assert [(line["kind"], line["description"], line["amount_minor"]) for line in body["lines"]] == [
        ("credit", "Outage of 3 May", -500)
    ]
    assert body["id"] == Invoice.objects.get(period_start=MAY).pk
    event = AuditEvent.objects.get(action="invoice.credit")
    assert (event.actor, event.target, event.detail["amount_minor"]) == ("sam", "acme 2026-05", 500)


def test_a_credit_on_an_ended_month_not_yet_issued(staff, acme, billed):
    with at(utc(2026, 6, 1, 0, 30)):  # May ended; the beat has not issued it yet
        invoice_generate(tenant=acme, period_start=MAY)
        response = staff.post(f"{ADMIN}/credits", {"amount_minor": 1000, "description": "Goodwill", "period": "2026-05"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert [line["amount_minor"] for line in body["lines"]] == [900, -1000]
    assert (body["subtotal_minor"], body["total_minor"]) == (900, 0)


def test_a_retried_credit_with_its_idempotency_key_is_granted_once(staff, acme, billed):
    payload = {"amount_minor": 500, "description": "Outage"}
    first = staff.post(f"{ADMIN}/credits", payload, HTTP_IDEMPOTENCY_KEY="credit-1")
    replay = staff.post(f"{ADMIN}/credits", payload, HTTP_IDEMPOTENCY_KEY="credit-1")
    assert first.status_code == replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert InvoiceLine.objects.filter(kind="credit").count() == 1


@pytest.mark.parametrize("period", ["2026-03", "2026-04"])
def test_an_issued_months_credit_is_409_and_changes_nothing(staff, acme, billed, period):
    before = state()
    problem = assert_problem(staff.post(f"{ADMIN}/credits", {"amount_minor": 5, "description": "x", "period": period}), 409)
    assert "issued invoices never change: credit a later month" in problem["detail"]
    assert state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "x"}, "amount_minor"),
        ({"amount_minor": 0, "description": "x"}, "amount_minor"),
        ({"amount_minor": -500, "description": "x"}, "amount_minor"),
        ({"amount_minor": 2**31, "description": "x"}, "amount_minor"),
        ({"amount_minor": "lots", "description": "x"}, "amount_minor"),
        ({"amount_minor": 5}, "description"),
        ({"amount_minor": 5, "description": ""}, "description"),
        ({"amount_minor": 5, "description": "x" * 256}, "description"),
        ({"amount_minor": 5, "description": "x", "period": "2026-5"}, "period"),
        ({"amount_minor": 5, "description": "x", "period": "2026-06"}, "period"),
        ({"amount_minor": 5, "description": "x", "currency": "usd"}, "currency"),
    ],
)
def test_bad_credits_are_400_naming_the_field_and_write_nothing(staff, acme, billed, body, field):
    before = state()
    problem = assert_problem(staff.post(f"{ADMIN}/credits", body), 400)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert state() == before


def test_a_credit_in_another_currency_than_the_invoices_is_400(staff, acme, billed):
    before = state()
    body = {"amount_minor": 5, "description": "x", "currency": "EUR"}
    problem = assert_problem(staff.post(f"{ADMIN}/credits", body), 400)
    assert "is in USD; a credit in EUR cannot go on it" in problem["detail"]
    assert state() == before


def test_a_draft_made_by_credits_is_issued_with_them(staff, acme, billed):
    staff.post(f"{ADMIN}/credits", {"amount_minor": 250, "description": "Outage"})
    issued = issue_after(acme, MAY)
    assert lines_of(issued) == [("base", "1.000000", "month", 900, 900), ("credit", "1.000000", "credit", -250, -250)]
    assert (issued.status, issued.total_minor) == ("open", 650)
