"""Property tests of invoice arithmetic (hypothesis, bounded examples): proration never bills more than a month,
nothing is negative but credits, totals are the sum of the lines floored at 0 (staff's credits too, decision 0051),
and regenerating a draft changes nothing."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.invoice_math import PlanSpan, month_bounds, overage_lines, plan_lines
from billing.invoicing import invoice_credit_add, invoice_generate
from billing.models import Invoice, Plan, Subscription, SubscriptionPlanInterval, UsageRecord
from billing.services import subscription_start
from tests.billing.invoicing import GB, at, lines_of, usage_add, utc

SETTINGS = {"deadline": None, "database": None, "derandomize": True}

months = st.builds(lambda y, m: utc(y, m, 1), st.integers(2024, 2026), st.integers(1, 10))
prices = st.integers(0, 10**6)


@st.composite
def histories(draw, same_price: bool = False):
    """A month and the plans in force in it: contiguous spans from a start (maybe mid-month) to an end (maybe before
    the month's end: a cancellation), each on a plan with its own price (or all at one price)."""
    start, end = month_bounds(draw(months))
    seconds = int((end - start).total_seconds())
    cuts = sorted(draw(st.sets(st.integers(0, seconds), min_size=2, max_size=8)))
    price = draw(prices)
    spans = []
    for n, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        plan = Plan(code=f"p{n}", name=f"P{n}", monthly_price_minor=price if same_price else draw(prices))
        spans.append(PlanSpan(plan, start + timedelta(seconds=a), start + timedelta(seconds=b)))
    return start, end, spans


@settings(max_examples=300, **SETTINGS)
@given(histories())
def test_plan_lines_sum_to_the_rounded_exact_proration_and_each_is_within_a_minor_unit(history):
    start, end, spans = history
    lines = plan_lines(spans, start=start, end=end)
    month = Fraction(int((end - start).total_seconds()))
    exact = [Fraction(int((s.end - s.start).total_seconds())) / month * s.plan.monthly_price_minor for s in spans]
    assert len(lines) == len(spans) and all(line.amount_minor >= 0 for line in lines)
    assert all(abs(line.amount_minor - e) < 1 for line, e in zip(lines, exact, strict=True))
    total = sum(line.amount_minor for line in lines)
    assert abs(total - sum(exact)) <= Fraction(1, 2)
    assert total <= max(s.plan.monthly_price_minor for s in spans)


@settings(max_examples=200, **SETTINGS)
@given(histories(same_price=True))
def test_proration_of_one_price_sums_to_at_most_the_monthly_price(history):
    start, end, spans = history
    price = spans[0].plan.monthly_price_minor
    total = sum(line.amount_minor for line in plan_lines(spans, start=start, end=end))
    assert total <= price
    if spans[0].start == start and spans[-1].end == end:  # the whole month, however often it changed: exactly the price
        assert total == price


@settings(max_examples=200, **SETTINGS)
@given(
    months,
    st.one_of(st.none(), st.integers(0, 10**13)),
    st.one_of(st.none(), st.integers(0, 10**13)),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 10**17),
    st.integers(0, 10**14),
)
def test_overage_is_the_excess_at_the_price_and_never_negative_or_zero(
    month, quota, limit, storage_price, egress_price, byte_hours, egress
):
    start, end = month_bounds(month)
    plan = Plan(
        storage_quota_bytes=quota, egress_bytes_per_month_limit=limit,
        storage_overage_minor_per_gb=storage_price, egress_overage_minor_per_gb=egress_price,
    )  # fmt: skip
    lines = {
        line.kind: line
        for line in overage_lines(plan, {"storage_byte_hours": byte_hours, "egress_bytes": egress}, start=start, end=end)
    }
    hours = Fraction(int((end - start).total_seconds()), 3600)
    storage_over = Fraction(byte_hours, GB) / hours - Fraction(quota or 0, GB)
    egress_over = Fraction(egress - (limit or 0), GB)
    expected = {
        "storage_overage": (quota is not None and storage_over * storage_price >= Fraction(1, 2), storage_over * storage_price),
        "egress_overage": (limit is not None and egress_over * egress_price >= Fraction(1, 2), egress_over * egress_price),
    }
    for kind, (billed, exact) in expected.items():
        assert (kind in lines) == billed
        if billed:
            assert lines[kind].amount_minor > 0 and abs(lines[kind].amount_minor - exact) <= Fraction(1, 2)
            assert lines[kind].quantity > 0


@pytest.fixture
def subscription(plans, tenant) -> Subscription:
    with at(utc(2023, 12, 1)):
        return subscription_start(tenant=tenant, plan_code="free")


@pytest.mark.django_db
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], **SETTINGS)
@given(
    history=histories(),
    stored=st.integers(0, 2000 * GB),
    egress=st.integers(0, 20000 * GB),
    plan_codes=st.lists(st.sampled_from(["free", "pro", "team"]), min_size=8, max_size=8),
    credits=st.lists(st.integers(1, 10**4), max_size=4),  # up to a few Team months: some leave a total, some floor it
)
def test_a_generated_invoice_totals_its_lines_is_never_negative_and_regenerates_identically(
    subscription, plans, history, stored, egress, plan_codes, credits
):
    tenant = subscription.tenant
    Invoice.objects.filter(tenant=tenant).delete()
    SubscriptionPlanInterval.objects.filter(tenant=tenant).delete()
    UsageRecord.objects.filter(tenant=tenant).delete()
    start, end, spans = history
    for span, code in zip(spans, plan_codes, strict=False):
        SubscriptionPlanInterval.objects.create(
            tenant=tenant, subscription=subscription, plan=plans[code], started_at=span.start, ended_at=span.end
        )
    usage_add(tenant, start=start, hours=3, stored_bytes=stored * 240, egress={"app": egress})
    with at(end + timedelta(hours=2)):
        first = invoice_generate(tenant=tenant, period_start=start)
        for n, amount in enumerate(credits, start=1):
            first = invoice_credit_add(tenant=tenant, amount_minor=amount, description="c", actor="sam", period=start)
            assert first.total_minor == max(0, first.subtotal_minor - sum(credits[:n])) >= 0  # each credit re-totals
        drafted = lines_of(first)
        again = invoice_generate(tenant=tenant, period_start=start)
    assert again.pk == first.pk and lines_of(again) == drafted
    charges = [amount for kind, *_, amount in drafted if kind != "credit"]
    assert [-amount for kind, *_, amount in drafted if kind == "credit"] == credits
    assert all(a >= 0 for a in charges) and again.subtotal_minor == sum(charges) >= 0
    assert again.total_minor == max(0, sum(amount for *_, amount in drafted)) >= 0
    assert (again.subtotal_minor, again.total_minor) == (first.subtotal_minor, first.total_minor)
