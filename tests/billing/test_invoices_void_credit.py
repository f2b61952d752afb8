"""Staff void an open invoice and credit a month (docs/decisions/0051): services, idempotency, concurrency, bad input.

Real PostgreSQL; the clock frozen with time-machine; concurrent callers are threads with their own connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from accounts.models import AuditEvent, Tenant
from billing.invoicing import (
    MAX_CREDIT_MINOR,
    invoice_credit_add,
    invoice_estimate,
    invoice_generate,
    invoice_issue,
    invoice_void,
)
from billing.models import Invoice, InvoiceLine, InvoiceSequence, Plan
from gateway.core.errors import Conflict, NotFound, ValidationError
from tests.billing.invoicing import at, issue_after, lines_of, plan_history, utc
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db

MARCH, APRIL = utc(2026, 3, 1), utc(2026, 4, 1)
MID_APRIL = utc(2026, 4, 15, 12)


def state() -> dict:
    """Every row voiding or crediting could write."""
    return {
        "invoices": list(Invoice.objects.order_by("pk").values()),
        "lines": list(InvoiceLine.objects.order_by("pk").values()),
        "sequences": list(InvoiceSequence.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values("pk", "action")),
    }


@pytest.fixture
def open_march(plans, tenant) -> Invoice:
    """Acme on Pro since February: March issued (open, 900) on 1 April."""
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    invoice = issue_after(tenant, MARCH)
    assert invoice.status == Invoice.Status.OPEN
    return invoice


# -- void ---------------------------------------------------------------------------------------------------------------


def test_voiding_an_open_invoice_keeps_its_number_and_records_when_and_why(open_march, tenant):
    sequence = InvoiceSequence.objects.get().next_number
    with at(utc(2026, 4, 3, 9)):
        invoice = invoice_void(tenant=tenant, number=open_march.number, reason="  Billed twice  ", actor="sam")
    row = Invoice.objects.get(pk=open_march.pk)
    assert (row.status, row.number, row.voided_at, row.void_reason) == (
        "void",
        open_march.number,
        utc(2026, 4, 3, 9),
        "Billed twice",
    )
    assert invoice.status == "void" and lines_of(row) == lines_of(open_march) and row.total_minor == open_march.total_minor
    assert InvoiceSequence.objects.get().next_number == sequence  # no number given back, none skipped
    [event] = AuditEvent.objects.filter(action="invoice.void")
    assert (event.actor, event.tenant_id, event.target) == ("sam", tenant.pk, open_march.number)
    assert event.detail == {"reason": "Billed twice", "total_minor": 900, "currency": "USD"}


def test_voiding_a_void_invoice_again_returns_it_unchanged(open_march, tenant):
    with at(utc(2026, 4, 3)):
        invoice_void(tenant=tenant, number=open_march.number, reason="Billed twice", actor="sam")
    before = state()
    with at(utc(2026, 4, 9)):
        again = invoice_void(tenant=tenant, number=open_march.number, reason="another reason", actor="sid")
    assert (again.status, again.voided_at, again.void_reason) == ("void", utc(2026, 4, 3), "Billed twice")
    assert state() == before  # not re-stamped, not audited twice


def test_a_paid_invoice_is_credited_not_voided(open_march, tenant):
    Invoice.objects.filter(pk=open_march.pk).update(status="paid", paid_at=open_march.issued_at)
    before = state()
    with pytest.raises(Conflict, match="a paid invoice is not voided but credited"):
        invoice_void(tenant=tenant, number=open_march.number, reason="Refund", actor="sam")
    assert state() == before


def test_drafts_unknown_numbers_and_other_tenants_invoices_are_not_found(open_march, tenant):
    globex = make_tenant("globex")
    plan_history(globex, (utc(2026, 2, 1), "team"))
    theirs = issue_after(globex, MARCH)
    with at(utc(2026, 5, 2)):
        draft = invoice_generate(tenant=tenant, period_start=APRIL)
    before = state()
    for number in (theirs.number, "WHARF-999999", str(draft.pk), ""):
        with pytest.raises(NotFound, match="No invoice"):
            invoice_void(tenant=tenant, number=number, reason="x", actor="sam")
    assert state() == before


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_void_needs_a_reason_of_at_most_500_characters(open_march, tenant, reason):
    before = state()
    with pytest.raises(ValidationError, match="reason"):
        invoice_void(tenant=tenant, number=open_march.number, reason=reason, actor="sam")
    assert state() == before


def _wait_for_a_lock_waiter(timeout: float = 10) -> None:
    """Until another connection of this test database waits on a row or transaction lock (the other thread is blocked)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot of the view
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the other thread never waited on the lock")


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Run `target` in a thread with its own connection; its result or error lands in the returned dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as error:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_two_voids_at_once_void_it_once(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    number = issue_after(tenant, MARCH).number
    results: list[Invoice] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(actor: str) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(invoice_void(tenant=tenant, number=number, reason=f"by {actor}", actor=actor))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    with at(utc(2026, 4, 2)):
        threads = [threading.Thread(target=run, args=(f"staff{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == [] and len(results) == 4 and {r.status for r in results} == {"void"}
    [event] = AuditEvent.objects.filter(action="invoice.void")
    assert Invoice.objects.get(number=number).void_reason == event.detail["reason"]  # the one that voided it
    assert {r.void_reason for r in results} == {event.detail["reason"]}  # the others got it back unchanged


# -- credit -------------------------------------------------------------------------------------------------------------


def test_a_credit_mid_month_creates_the_months_draft_and_the_invoice_keeps_it(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(MID_APRIL):
        draft = invoice_credit_add(tenant=tenant, amount_minor=250, description=" Outage of 3 April ", actor="sam")
    assert (draft.status, draft.number, draft.period_start, draft.currency) == ("draft", None, APRIL, "USD")
    assert lines_of(draft) == [("credit", "1.000000", "credit", -250, -250)]
    assert (draft.subtotal_minor, draft.total_minor) == (0, 0)  # nothing charged yet: the total never goes below 0
    assert draft.lines.get().description == "Outage of 3 April"
    [event] = AuditEvent.objects.filter(action="invoice.credit")
    assert (event.actor, event.tenant_id, event.target) == ("sam", tenant.pk, "acme 2026-04")
    assert event.detail == {"amount_minor": 250, "currency": "USD", "description": "Outage of 3 April", "invoice": draft.pk}
    issued = issue_after(tenant, APRIL)
    assert issued.pk == draft.pk and issued.status == "open" and issued.number == "WHARF-000001"
    assert lines_of(issued) == [("base", "1.000000", "month", 900, 900), ("credit", "1.000000", "credit", -250, -250)]
    assert (issued.subtotal_minor, issued.total_minor) == (900, 650)


def test_credits_on_an_ended_month_not_yet_issued_recompute_its_draft(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1, 0, 30)):  # March has ended; the beat issues it at 01:13
        invoice_generate(tenant=tenant, period_start=MARCH)
        invoice_credit_add(tenant=tenant, amount_minor=100, description="Goodwill", actor="sam", period=MARCH)
        draft = invoice_credit_add(tenant=tenant, amount_minor=300, description="More", actor="sam", period=MARCH)
    assert [(k, a) for k, *_, a in lines_of(draft)] == [("base", 900), ("credit", -100), ("credit", -300)]
    assert [line.position for line in draft.lines.all()] == [1, 2, 3]
    assert (draft.subtotal_minor, draft.total_minor) == (900, 500)
    with at(utc(2026, 4, 1, 0, 40)):
        draft = invoice_credit_add(tenant=tenant, amount_minor=10**6, description="Everything", actor="sam", period=MARCH)
    assert (draft.subtotal_minor, draft.total_minor) == (900, 0)  # floored at 0, never negative
    issued = issue_after(tenant, MARCH)
    assert (issued.status, issued.total_minor, issued.paid_at) == ("paid", 0, issued.issued_at)  # nothing to collect


@pytest.mark.parametrize("status", ["open", "paid", "void"])
def test_an_issued_months_invoice_takes_no_credit(open_march, tenant, status):
    Invoice.objects.filter(pk=open_march.pk).update(
        status=status,
        paid_at=open_march.issued_at if status == "paid" else None,
        voided_at=open_march.issued_at if status == "void" else None,
    )
    before = state()
    with at(MID_APRIL), pytest.raises(Conflict, match="issued invoices never change: credit a later month"):
        invoice_credit_add(tenant=tenant, amount_minor=100, description="Late", actor="sam", period=MARCH)
    assert state() == before
    with at(MID_APRIL):  # the next month takes it
        assert invoice_credit_add(tenant=tenant, amount_minor=100, description="Late", actor="sam").period_start == APRIL


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount_minor": 0}, "from 1 to"),
        ({"amount_minor": -5}, "from 1 to"),
        ({"amount_minor": MAX_CREDIT_MINOR + 1}, "from 1 to"),
        ({"amount_minor": True}, "from 1 to"),
        ({"amount_minor": 1.5}, "from 1 to"),
        ({"description": "  "}, "description of 1 to 255"),
        ({"description": "x" * 256}, "description of 1 to 255"),
        ({"currency": "usd"}, "three-letter ISO 4217"),
        ({"currency": "EUR"}, "is in USD; a credit in EUR cannot go on it"),
        ({"period": utc(2026, 4, 2)}, "first of a month"),
        ({"period": utc(2026, 4, 1).replace(tzinfo=None)}, "aware UTC"),
        ({"period": utc(2026, 5, 1)}, "2026-05 has not begun"),
    ],
)
def test_bad_credits_are_refused_and_write_nothing(plans, tenant, kwargs, message):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    before = state()
    with at(MID_APRIL), pytest.raises(ValidationError, match=message):
        invoice_credit_add(tenant=tenant, **{"amount_minor": 100, "description": "Goodwill", "actor": "sam", **kwargs})
    assert state() == before and not Invoice.objects.exists()


def test_a_tenant_without_a_plan_is_credited_in_the_currency_staff_name(plans, tenant):
    before = state()
    with at(MID_APRIL), pytest.raises(ValidationError, match="no plan in 2026-04: say the credit's currency"):
        invoice_credit_add(tenant=tenant, amount_minor=100, description="Goodwill", actor="sam")
    assert state() == before
    with at(MID_APRIL):
        draft = invoice_credit_add(tenant=tenant, amount_minor=100, description="Goodwill", actor="sam", currency="EUR")
        again = invoice_credit_add(tenant=tenant, amount_minor=50, description="More", actor="sam")  # the draft's currency
    assert draft.currency == again.currency == "EUR" and again.pk == draft.pk


def test_a_plan_in_another_currency_than_the_credits_refuses_to_relabel_them(plans, tenant):
    Plan.objects.create(code="euro", name="Euro", monthly_price_minor=800, currency="EUR")
    with at(utc(2026, 3, 10)):
        invoice_credit_add(tenant=tenant, amount_minor=100, description="Goodwill", actor="sam", currency="USD")
    plan_history(tenant, (utc(2026, 3, 20), "euro"))
    before = state()
    with at(APRIL), pytest.raises(ValidationError, match="credits of 2026-03 are in USD but its plans bill in EUR"):
        invoice_generate(tenant=tenant, period_start=MARCH)
    assert state() == before


def test_a_tenant_being_deleted_takes_no_credit(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.DELETING)
    before = state()
    with at(MID_APRIL), pytest.raises(Conflict, match="being deleted"):
        invoice_credit_add(tenant=tenant, amount_minor=100, description="Goodwill", actor="sam")
    assert state() == before


def test_the_estimate_includes_the_current_months_credits(plans, tenant):
    plan_history(tenant, (utc(2026, 3, 20), "pro"))
    with at(MID_APRIL):
        assert invoice_estimate(tenant=tenant).total_minor == 900
        invoice_credit_add(tenant=tenant, amount_minor=200, description="Outage", actor="sam")
        invoice_credit_add(tenant=tenant, amount_minor=50, description="Goodwill", actor="sam")
        estimate = invoice_estimate(tenant=tenant)
    assert [(line.kind, line.description, line.amount_minor) for line in estimate.lines] == [
        ("base", "Pro plan, April 2026", 900),
        ("credit", "Outage", -200),
        ("credit", "Goodwill", -50),
    ]
    assert (estimate.subtotal_minor, estimate.total_minor) == (900, 650)
    with at(utc(2026, 5, 2)):  # May: April's credits are April's, not May's
        assert invoice_estimate(tenant=tenant).total_minor == 900


def test_the_estimate_of_a_tenant_without_a_plan_shows_its_credits_and_never_goes_negative(plans, tenant):
    with at(MID_APRIL):
        assert invoice_estimate(tenant=tenant) is None
        invoice_credit_add(tenant=tenant, amount_minor=200, description="Outage", actor="sam", currency="EUR")
        estimate = invoice_estimate(tenant=tenant)
    assert (estimate.currency, estimate.subtotal_minor, estimate.total_minor) == ("EUR", 0, 0)
    assert [line.amount_minor for line in estimate.lines] == [-200]


@pytest.mark.django_db(transaction=True)
def test_a_credit_that_wins_the_lock_is_on_the_invoice_the_beat_then_issues(plans, tenant):
    from billing.tasks import invoice_issue_task

    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1, 1, 13)):
        invoice_generate(tenant=tenant, period_start=MARCH)  # an earlier run drafted it
        with transaction.atomic():
            invoice_credit_add(tenant=tenant, amount_minor=400, description="Outage", actor="sam", period=MARCH)
            beat, outcome = _in_thread(lambda: invoice_issue_task(tenant_id=tenant.pk, period_start=MARCH.isoformat()))
            _wait_for_a_lock_waiter()  # the beat waits for the credit's transaction
        beat.join(timeout=30)
    assert outcome == {"result": "WHARF-000001"}
    invoice = Invoice.objects.get()
    assert invoice.status == "open" and [(k, a) for k, *_, a in lines_of(invoice)] == [("base", 900), ("credit", -400)]
    assert (invoice.subtotal_minor, invoice.total_minor) == (900, 500)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("drafted", [True, False], ids=["draft-exists", "no-row-yet"])
def test_a_credit_that_loses_to_the_beat_is_refused_and_the_invoice_is_unchanged(plans, tenant, drafted):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1, 1, 13)):
        if drafted:
            invoice_generate(tenant=tenant, period_start=MARCH)
        with transaction.atomic():
            issued = invoice_issue(tenant=tenant, period_start=MARCH)  # holds the invoice (or its new row) until commit
            credit, outcome = _in_thread(
                lambda: invoice_credit_add(tenant=tenant, amount_minor=400, description="Outage", actor="sam", period=MARCH)
            )
            _wait_for_a_lock_waiter()
        credit.join(timeout=30)
    assert isinstance(outcome.get("error"), Conflict), outcome
    assert "WHARF-000001, open" in str(outcome["error"])
    invoice = Invoice.objects.get()
    assert invoice.pk == issued.pk and lines_of(invoice) == [("base", "1.000000", "month", 900, 900)]
    assert invoice.total_minor == 900 and not AuditEvent.objects.filter(action="invoice.credit").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_credits_on_one_month_all_land_in_order(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            invoice_credit_add(tenant=tenant, amount_minor=100 * n, description=f"Credit {n}", actor="sam")
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    with at(MID_APRIL):
        threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    [invoice] = Invoice.objects.all()  # one draft for the month, met at its unique constraint
    lines = list(invoice.lines.order_by("position"))
    assert [line.position for line in lines] == [1, 2, 3, 4]
    assert sorted(line.amount_minor for line in lines) == [-400, -300, -200, -100]
    with at(MID_APRIL):
        assert invoice_estimate(tenant=tenant).total_minor == 0  # 900 − 1000, floored
