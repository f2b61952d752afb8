"""Invoices (docs/decisions/0044): proration from recorded plan intervals, overage, idempotent generation and issue.

Real PostgreSQL; plan changes through billing.services under a frozen clock (time-machine).
"""

from __future__ import annotations

import importlib
import threading
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from billing.invoicing import invoice_estimate, invoice_generate, invoice_issue
from billing.models import Invoice, InvoiceLine, InvoiceSequence, Subscription, SubscriptionPlanInterval
from billing.selectors import invoice_get, invoice_list
from billing.services import subscription_change_plan, subscription_start
from gateway.core.errors import ValidationError
from tests.billing.invoicing import GB, at, lines_of, plan_history, usage_add, utc
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db

MARCH = utc(2026, 3, 1)
APRIL = utc(2026, 4, 1)  # 30 days: 720 hours


def test_plan_changes_are_recorded_as_intervals_in_the_services_transaction(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 10, 8), "free"), (utc(2026, 3, 5), "pro"), (utc(2026, 3, 20, 12), "team"))
    intervals = list(SubscriptionPlanInterval.objects.filter(tenant=tenant).order_by("started_at"))
    assert [(i.plan.code, i.started_at, i.ended_at) for i in intervals] == [
        ("free", utc(2026, 2, 10, 8), utc(2026, 3, 5)),
        ("pro", utc(2026, 3, 5), utc(2026, 3, 20, 12)),
        ("team", utc(2026, 3, 20, 12), None),
    ]
    with at(utc(2026, 3, 25)):
        subscription_change_plan(tenant=tenant, plan_code="team", actor="alice")  # the same plan: no new interval
        subscription_change_plan(tenant=tenant, plan_code="pro", actor="alice")
        subscription_change_plan(tenant=tenant, plan_code="free", actor="alice")  # same instant: re-points, never in force
    assert list(
        SubscriptionPlanInterval.objects.filter(tenant=tenant, started_at__gte=utc(2026, 3, 25)).values_list(
            "plan__code", "ended_at"
        )
    ) == [("free", None)]


def test_a_refused_change_records_no_interval(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 2, 3)), pytest.raises(Exception, match="No plan 'gold'"):
        subscription_change_plan(tenant=tenant, plan_code="gold", actor="alice")
    assert SubscriptionPlanInterval.objects.filter(tenant=tenant).count() == 1


def test_the_migration_backfills_an_interval_for_existing_subscriptions(plans, tenant):
    subscription = subscription_start(tenant=tenant, plan_code="pro")
    SubscriptionPlanInterval.objects.all().delete()
    importlib.import_module("billing.migrations.0005_invoices").backfill_plan_intervals(apps, None)
    [interval] = SubscriptionPlanInterval.objects.all()
    assert (interval.plan_id, interval.started_at, interval.ended_at) == (subscription.plan_id, subscription.created_at, None)


def test_a_whole_month_on_one_plan_is_its_base_price(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 14, 9, 30), "pro"))
    with at(utc(2026, 4, 1, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=MARCH)
    assert invoice.status == Invoice.Status.DRAFT and invoice.number is None and invoice.currency == "USD"
    assert lines_of(invoice) == [("base", "1.000000", "month", 900, 900)]
    assert (invoice.subtotal_minor, invoice.total_minor) == (900, 900)
    assert (invoice.period_start, invoice.period_end) == (MARCH, APRIL)


def test_a_mid_month_upgrade_prorates_both_plans_by_the_second(plans, tenant):
    # Pro 1-16 March 00:00 (15 of 31 days), Team after: 900·15/31 = 435.48…, then the running total
    # 435.48… + 4900·16/31 = 2964.516… rounds half-up to 2965, so Team's line is 2965 − 435 = 2530.
    plan_history(tenant, (utc(2026, 1, 20), "pro"), (utc(2026, 3, 16), "team"))
    with at(utc(2026, 4, 2)):
        invoice = invoice_generate(tenant=tenant, period_start=MARCH)
    assert lines_of(invoice) == [
        ("proration", "0.483871", "month", 900, 435),
        ("proration", "0.516129", "month", 4900, 2530),
    ]
    assert invoice.total_minor == 2965
    assert "Pro plan, 01 Mar 00:00 – 16 Mar 00:00 UTC" in invoice.lines.first().description


def test_a_downgrade_and_several_changes(plans, tenant):
    # Team for 10 days, Pro for 10 days and 12 hours, Free for the rest (10.5 days) of 31.
    plan_history(tenant, (utc(2025, 12, 1), "team"), (utc(2026, 1, 11), "pro"), (utc(2026, 1, 21, 12), "free"))
    with at(utc(2026, 2, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=utc(2026, 1, 1))
    # 4900·10/31 = 1580.645… → 1581; + 900·10.5/31 = 304.838… → running 1885.48… → 1885 (line 304); free 0.
    assert lines_of(invoice) == [
        ("proration", "0.322581", "month", 4900, 1581),
        ("proration", "0.338710", "month", 900, 304),
        ("proration", "0.338710", "month", 0, 0),
    ]
    assert invoice.total_minor == 1885
    with at(utc(2026, 2, 1)):  # December: Team the whole month
        assert lines_of(invoice_generate(tenant=tenant, period_start=utc(2025, 12, 1))) == [
            ("base", "1.000000", "month", 4900, 4900)
        ]


def test_a_change_at_the_exact_month_boundary_bills_each_month_one_plan(plans, tenant):
    plan_history(tenant, (utc(2026, 1, 1), "pro"), (utc(2026, 2, 1), "team"))
    with at(utc(2026, 3, 1)):
        january = invoice_generate(tenant=tenant, period_start=utc(2026, 1, 1))
        february = invoice_generate(tenant=tenant, period_start=utc(2026, 2, 1))
    assert lines_of(january) == [("base", "1.000000", "month", 900, 900)]
    assert lines_of(february) == [("base", "1.000000", "month", 4900, 4900)]


def test_a_subscription_started_mid_month_pays_its_share(plans, tenant):
    plan_history(tenant, (utc(2026, 4, 21), "pro"))  # 10 of April's 30 days
    with at(utc(2026, 5, 1)):
        assert lines_of(invoice_generate(tenant=tenant, period_start=APRIL)) == [("proration", "0.333333", "month", 900, 300)]


@pytest.mark.parametrize(
    "year,lines,total",
    [
        # 2028 is a leap year: 14 of 29 days on Pro (434.48… → 434), running total 2968.96… → 2969.
        (2028, [("proration", "0.482759", "month", 900, 434), ("proration", "0.517241", "month", 4900, 2535)], 2969),
        (2027, [("proration", "0.500000", "month", 900, 450), ("proration", "0.500000", "month", 4900, 2450)], 2900),
    ],
)
def test_february_has_the_days_of_its_year(plans, tenant, year, lines, total):
    plan_history(tenant, (utc(year, 1, 5), "pro"), (utc(year, 2, 15), "team"))
    with at(utc(year, 3, 1, 2)):
        invoice = invoice_generate(tenant=tenant, period_start=utc(year, 2, 1))
    assert lines_of(invoice) == lines and invoice.total_minor == total


def test_storage_and_egress_overage_of_the_plan_in_force_at_the_month_end(plans, tenant):
    plan_history(tenant, (utc(2026, 3, 1), "pro"))  # 50 GB stored, 500 GB egress included; 10¢ / 5¢ per GB over
    usage_add(tenant, start=APRIL, hours=720, stored_bytes=60 * GB, egress={"app": 300 * GB, "web": 250 * GB + GB // 2})
    with at(utc(2026, 5, 1, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=APRIL)
    # 60 GB all month = 60 GB-months, 10 over → 100¢; 550.5 GB egress, 50.5 over → 252.5¢ → 253¢ (half-up).
    assert lines_of(invoice) == [
        ("base", "1.000000", "month", 900, 900),
        ("storage_overage", "10.000000", "GB-month", 10, 100),
        ("egress_overage", "50.500000", "GB", 5, 253),
    ]
    assert invoice.total_minor == invoice.subtotal_minor == 1253
    assert [line.description for line in invoice.lines.all()][1:] == [
        "Storage beyond the 50 GB included",
        "Egress beyond the 500 GB included",
    ]


def test_storage_overage_is_in_gb_months_not_gb(plans, tenant):
    plan_history(tenant, (utc(2026, 3, 1), "pro"))
    usage_add(tenant, start=APRIL, hours=360, stored_bytes=110 * GB)  # 110 GB for half of April = 55 GB-months
    with at(utc(2026, 5, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=APRIL)
    assert lines_of(invoice)[1:] == [("storage_overage", "5.000000", "GB-month", 10, 50)]


@pytest.mark.parametrize(
    "history,stored,egress",
    [
        ([(utc(2026, 3, 1), "free")], 9 * GB, 80 * GB),  # Free's limits are hard: no overage price, no line
        ([(utc(2026, 3, 1), "pro")], 50 * GB, 500 * GB),  # exactly at the limits: nothing over
        ([(utc(2026, 3, 1), "pro"), (utc(2026, 4, 20), "team")], 60 * GB, 600 * GB),  # Team at the end: within its limits
    ],
)
def test_no_overage_line_where_nothing_is_billable_over(plans, tenant, history, stored, egress):
    plan_history(tenant, *history)
    usage_add(tenant, start=APRIL, hours=720, stored_bytes=stored, egress={"app": egress})
    with at(utc(2026, 5, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=APRIL)
    assert {line.kind for line in invoice.lines.all()} <= {"base", "proration"}
    assert all(line.amount_minor >= 0 for line in invoice.lines.all())


def test_regenerating_a_draft_gives_the_same_lines_and_follows_late_usage(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"), (utc(2026, 3, 10, 6), "team"))
    usage_add(tenant, start=MARCH, hours=744, stored_bytes=501 * GB)
    with at(utc(2026, 4, 1, 1)):
        first = invoice_generate(tenant=tenant, period_start=MARCH)
        again = invoice_generate(tenant=tenant, period_start=MARCH)
    drafted = lines_of(first)
    assert again.pk == first.pk and lines_of(again) == drafted and again.total_minor == first.total_minor
    assert len(drafted) == 3 and drafted[2][0] == "storage_overage" and Invoice.objects.count() == 1
    usage_add(tenant, start=MARCH, hours=0, egress={"late": 5001 * GB})  # a late flush of March's events
    with at(utc(2026, 4, 1, 2)):
        updated = invoice_generate(tenant=tenant, period_start=MARCH)
    assert lines_of(updated) == [*drafted, ("egress_overage", "1.000000", "GB", 4, 4)]
    assert updated.total_minor == first.total_minor + 4


def test_a_drafts_credit_lines_survive_regeneration(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1)):
        invoice = invoice_generate(tenant=tenant, period_start=MARCH)
        InvoiceLine.objects.create(
            invoice=invoice, position=9, kind="credit", description="Goodwill", quantity=1, unit="credit",
            unit_price_minor=-1000, amount_minor=-1000,
        )  # fmt: skip
        invoice = invoice_generate(tenant=tenant, period_start=MARCH)
    assert [k for k, *_ in lines_of(invoice)] == ["base", "credit"]
    assert (invoice.subtotal_minor, invoice.total_minor) == (900, 0)  # a credit beyond the charges floors the total at 0


@pytest.mark.parametrize("status", ["open", "paid", "void"])
def test_an_issued_invoice_is_never_changed(plans, tenant, status):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1, 1, 13)):
        issued = invoice_issue(tenant=tenant, period_start=MARCH)
    Invoice.objects.filter(pk=issued.pk).update(
        status=status,
        paid_at=issued.issued_at if status == "paid" else None,
        voided_at=issued.issued_at if status == "void" else None,  # a void invoice says when (decision 0051)
    )
    before = (lines_of(issued), Invoice.objects.filter(pk=issued.pk).values().get())
    usage_add(tenant, start=MARCH, hours=744, stored_bytes=900 * GB)
    with at(utc(2026, 4, 3)):
        assert invoice_generate(tenant=tenant, period_start=MARCH).status == status
        assert invoice_issue(tenant=tenant, period_start=MARCH).number == issued.number
    assert (lines_of(issued), Invoice.objects.filter(pk=issued.pk).values().get()) == before


def test_issuing_numbers_invoices_in_order_without_gaps(plans, tenant, settings):
    settings.GATEWAY_BILLING_INVOICE_ISSUER = "wx"
    other = make_tenant("globex")
    nothing = make_tenant("initech")  # no subscription: nothing to bill
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    plan_history(other, (utc(2026, 2, 1), "free"))
    with at(utc(2026, 4, 1, 1, 13)):
        first = invoice_issue(tenant=tenant, period_start=MARCH)
        assert invoice_issue(tenant=nothing, period_start=MARCH) is None
        second = invoice_issue(tenant=other, period_start=MARCH)
        assert invoice_issue(tenant=tenant, period_start=MARCH).pk == first.pk  # twice: the same invoice and number
    assert (first.number, first.status, first.issued_at, first.paid_at) == ("WX-000001", "open", utc(2026, 4, 1, 1, 13), None)
    assert (second.number, second.status, second.paid_at) == ("WX-000002", "paid", second.issued_at)  # 0: nothing to collect
    assert InvoiceSequence.objects.get(issuer="WX").next_number == 3
    assert not Invoice.objects.filter(tenant=nothing).exists()


@pytest.mark.parametrize(
    "period_start,error,message",
    [
        (utc(2026, 3, 2), ValueError, "first of a month"),
        (utc(2026, 3, 1, 0, 0, 1), ValueError, "first of a month"),
        (utc(2026, 3, 1).replace(tzinfo=None), ValueError, "aware UTC"),
        (utc(2026, 4, 1), ValidationError, "2026-04 has not ended; invoice_estimate"),
    ],
)
def test_a_bad_period_is_refused_and_writes_nothing(plans, tenant, period_start, error, message):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 30, 23, 59)), pytest.raises(error, match=message):
        invoice_issue(tenant=tenant, period_start=period_start)
    assert not Invoice.objects.exists() and not InvoiceSequence.objects.exists()


def test_a_bad_issuer_setting_is_an_operators_error_and_writes_nothing(plans, tenant, settings):
    settings.GATEWAY_BILLING_INVOICE_ISSUER = "wharf inc."
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    with at(utc(2026, 4, 1)), pytest.raises(ImproperlyConfigured, match="1-32 letters or digits, not 'WHARF INC.'"):
        invoice_issue(tenant=tenant, period_start=MARCH)
    assert not Invoice.objects.exists()


def test_the_estimate_is_the_month_so_far_and_stores_nothing(plans, tenant):
    plan_history(tenant, (utc(2026, 3, 20), "pro"), (utc(2026, 4, 11), "team"))
    usage_add(tenant, start=APRIL, hours=240, stored_bytes=900 * GB)  # 900 GB for 10 days = 300 GB-months so far
    with at(utc(2026, 4, 11, 0, 30)):
        estimate = invoice_estimate(tenant=tenant)
    assert (estimate.period_start, estimate.period_end, estimate.usage_until) == (APRIL, utc(2026, 5, 1), utc(2026, 4, 11, 1))
    # Pro for 10 days (300), Team from now to the month's end (20 days: 3266.67 → running 3566.67 → 3567).
    assert [(line.kind, line.amount_minor) for line in estimate.lines] == [("proration", 300), ("proration", 3267)]
    assert estimate.total_minor == estimate.subtotal_minor == 3567 and estimate.currency == "USD"
    assert not Invoice.objects.exists()
    with at(utc(2026, 4, 30, 23, 59)):  # usage of the month's 720 hours so far: still under Team's 500 GB-months
        assert [line.kind for line in invoice_estimate(tenant=tenant).lines] == ["proration", "proration"]
    assert invoice_estimate(tenant=make_tenant("globex")) is None


def test_the_selectors_are_tenant_scoped_and_hide_drafts(plans, tenant):
    other = make_tenant("globex")
    plan_history(tenant, (utc(2026, 1, 1), "pro"))
    plan_history(other, (utc(2026, 1, 1), "team"))
    with at(utc(2026, 4, 1, 2)):
        january = invoice_issue(tenant=tenant, period_start=utc(2026, 1, 1))
        february = invoice_issue(tenant=tenant, period_start=utc(2026, 2, 1))
        draft = invoice_generate(tenant=tenant, period_start=MARCH)
        theirs = invoice_issue(tenant=other, period_start=utc(2026, 1, 1))
    assert list(invoice_list(tenant=tenant)) == [february, january]
    assert list(invoice_list(tenant=tenant, include_drafts=True)) == [draft, february, january]
    got = invoice_get(tenant=tenant, number=january.number)
    assert got == january and [line.kind for line in got.lines.all()] == ["base"]
    assert invoice_get(tenant=tenant, number=theirs.number) is None
    assert invoice_get(tenant=tenant, pk=theirs.pk) is None and invoice_get(tenant=other, pk=draft.pk) is None
    assert invoice_get(tenant=tenant, pk=draft.pk) == draft
    with pytest.raises(ValueError, match="exactly one"):
        invoice_get(tenant=tenant)


def test_a_subscription_status_does_not_change_what_is_billed(plans, tenant):
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    Subscription.objects.filter(tenant=tenant).update(status=Subscription.Status.PAST_DUE)
    with at(utc(2026, 4, 1)):
        assert lines_of(invoice_generate(tenant=tenant, period_start=MARCH)) == [("base", "1.000000", "month", 900, 900)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_of_one_month_create_one_invoice_and_one_number(plans, tenant):
    from billing.tasks import invoice_issue_task

    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    results: list[str | None] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            with at(utc(2026, 4, 1, 1, 13)):
                barrier.wait(timeout=10)
                results.append(invoice_issue_task(tenant_id=tenant.pk, period_start=MARCH.isoformat()))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and results == ["WHARF-000001"] * 4
    [invoice] = Invoice.objects.all()
    assert invoice.status == "open" and lines_of(invoice) == [("base", "1.000000", "month", 900, 900)]
    assert InvoiceSequence.objects.get().next_number == 2


def test_the_monthly_fan_out_issues_last_months_invoices_once_when_run_twice(plans, tenant, monkeypatch):
    from billing.tasks import invoice_issue_all_task, invoice_issue_task

    other, never = make_tenant("globex"), make_tenant("initech")
    plan_history(tenant, (utc(2026, 2, 1), "pro"))
    plan_history(other, (utc(2026, 3, 31, 23), "team"))
    plan_history(never, (utc(2026, 4, 1), "pro"))  # subscribed after March: nothing to bill for it
    sent: list[dict] = []
    monkeypatch.setattr(invoice_issue_task, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    with at(utc(2026, 4, 1, 1, 13)):
        assert invoice_issue_all_task() == 2
        assert invoice_issue_all_task() == 2  # beat twice (or a retry): the same work queued again
        for kwargs in sent:
            invoice_issue_task(**kwargs)
    assert {k["period_start"] for k in sent} == {MARCH.isoformat()}
    assert sorted(Invoice.objects.values_list("tenant__slug", "number")) == [
        ("acme", "WHARF-000001"),
        ("globex", "WHARF-000002"),
    ]
    assert invoice_issue_task(tenant_id=10**9, period_start=MARCH.isoformat()) is None


def test_the_invoice_task_is_on_the_beat_schedule_on_the_first():
    from billing.tasks import invoice_issue_all_task
    from gateway.celery import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["billing-invoices-issue-all"]
    assert entry["task"] == invoice_issue_all_task.name and entry["task"] in app.tasks
    schedule = entry["schedule"]
    assert (schedule.minute, schedule.hour, schedule.day_of_month) == ({13}, {1}, {1})
    assert schedule.month_of_year == set(range(1, 13)) and entry["options"]["expires"] < timedelta(days=1).total_seconds()
