"""Billing (admins see it, owners change the plan): the plan, usage against every limit, the plans to change to (decision 0046).

Sections, each from its own source so later slices add theirs beside them: `subscription` (the
plan), `standing` (billing.standing: every limit with a bar, warning at 80 % and 100 % like the usage
page's quota), `upcoming` and `invoices` (invoice_estimate; the issued invoices, their documents in
billing_invoices.py), `provider` (the payment provider, billing_payments.py, decision 0050), `dunning` (a failed payment's grace
period and its end, or the suspension and whether paying lifts it, decisions 0045 and 0053), `plans` (owners:
each active plan with a confirmation page, then billing.services.subscription_change_plan, or with a
provider its checkout) and, for staff, `drift` (the latest storage reconciliation).
A downgrade is allowed when the organisation is past the lower plan's limits: nothing is deleted
(decision 0039) and the confirmation says what the lower plan will refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.models import Membership, Tenant
from accounts.tenant_admin import UNPAID_REASON
from billing.documents import money
from billing.dunning import subscription_grace_end
from billing.invoicing import invoice_estimate
from billing.models import Plan, Subscription
from billing.payments import provider_get
from billing.selectors import invoice_list, manual_payment_open_get, plan_get, plan_list, subscription_get
from billing.services import subscription_change_plan
from billing.standing import Standing, billing_standing_get, month_start, month_usage_get
from billing.usage_selectors import storage_drift_list
from gateway.core.errors import ApplicationError
from gateway.dashboard.access import org_view
from gateway.dashboard.views.billing_payments import provider_label
from gateway.dashboard.views.usage import Quota

DRIFT_DAYS = 7  # how far back staff see the latest reconciliation
INVOICES_SHOWN = 24  # the newest issued invoices on the page (two years of months)


@dataclass(frozen=True)
class Meter:
    """One limit on the page: the standing and its bar (Quota's states: none, ok, warn ≥ 80 %, full ≥ 100 %)."""

    standing: Standing
    quota: Quota | None  # None: the figure could not be read now (the pull counter's Redis)


def price(plan: Plan) -> str:
    """`900` USD → "9.00 USD": minor units shown with two decimals, never through a float."""
    return f"{Decimal(plan.monthly_price_minor) / 100:.2f} {plan.currency}"


def _meters(standing: list[Standing]) -> list[Meter]:
    # No figure: unlimited (nothing counts, e.g. pulls) shows as such; under a limit it could not be read now.
    return [Meter(s, Quota(limit=s.limit, used=s.used or 0) if s.used is not None or s.limit is None else None) for s in standing]


def _plan_limit(plan: Plan, standing: Standing) -> int | None:
    value: int | None = getattr(plan, standing.field)
    return value


def over_limits(plan: Plan, standing: list[Standing]) -> list[tuple[Standing, int]]:
    """The limits of `plan` that the organisation's current use already reaches or passes, with the plan's limit."""
    over = []
    for s in standing:
        limit = _plan_limit(plan, s)
        if limit is not None and s.used is not None and s.used >= limit:
            over.append((s, limit))
    return over


def _standing(request: HttpRequest) -> tuple[list[Standing], dict[str, Any]]:
    tenant = request.org.tenant  # type: ignore[attr-defined]
    now = timezone.now()
    usage = month_usage_get(tenant=tenant, start=month_start(now), now=now)
    return billing_standing_get(tenant=tenant, egress_bytes=usage["egress_bytes"]), usage


def _invoices(tenant: Any) -> dict[str, Any]:
    """The `invoices` section (the newest issued ones, total formatted) and `upcoming` (invoice_estimate, None: no plan)."""
    invoices = [
        (invoice, money(invoice.total_minor, invoice.currency)) for invoice in invoice_list(tenant=tenant)[:INVOICES_SHOWN]
    ]
    estimate = invoice_estimate(tenant=tenant)
    upcoming = None
    if estimate is not None:
        upcoming = {
            "estimate": estimate,
            "lines": [
                (line, money(line.unit_price_minor, estimate.currency), money(line.amount_minor, estimate.currency))
                for line in estimate.lines
            ],
            "total": money(estimate.total_minor, estimate.currency),
        }
    return {"invoices": invoices, "upcoming": upcoming}


def _payments(org: Any, subscription: Subscription | None) -> dict[str, Any]:
    """`provider` (None: no payments here, plans change directly), its label, the open bank-transfer request, and
    `portal`: whether there are payment methods to manage (the subscription is paid through the provider's customer), and
    `plans_in_portal`: whether the plan changes there too (a live Stripe subscription: a second checkout is refused)."""
    provider = provider_get()
    if provider is None:
        return {"provider": None}
    transfer = manual_payment_open_get(tenant=org.tenant) if provider.name == "manual" else None
    amount = money(transfer.amount_minor, transfer.currency) if transfer else ""
    paying_here = subscription is not None and subscription.provider == provider.name and subscription.provider_customer_id
    return {
        "provider": provider,
        "provider_label": provider_label(provider),
        "transfer": transfer,
        "transfer_amount": amount,
        "portal": provider.has_portal and bool(paying_here),
        "plans_in_portal": provider.plan_changes_in_portal(subscription=subscription),
    }


def _standing_notice(tenant: Tenant, subscription: Subscription | None) -> dict[str, Any] | None:
    """The `dunning` notice: a failed payment's grace (past_due, until when), or the suspension and why (None: neither).

    What a member sees of a suspension is whether it is for non-payment (paying lifts it); an operator's own reason is
    not shown to members (decision 0023), only that the operators lift it."""
    if tenant.status == Tenant.Status.SUSPENDED:
        return {"state": "unpaid" if tenant.suspension_reason == UNPAID_REASON else "operator", "since": tenant.suspended_at}
    if subscription is not None and subscription.status == Subscription.Status.PAST_DUE:
        grace_end = subscription_grace_end(subscription=subscription)
        ended = grace_end is not None and grace_end <= timezone.now()
        return {"state": "past_due", "since": subscription.past_due_since, "grace_end": grace_end, "grace_ended": ended}
    return None


CHECKOUT_RETURNS = {  # Stripe Checkout's success_url and cancel_url come back with ?checkout=…
    "success": "Paid: the plan changes as soon as Stripe confirms it, usually within a minute.",
    "canceled": "The checkout was canceled: nothing was changed.",
}


@org_view(min_role=Membership.Role.ADMIN)
def billing(request: HttpRequest, slug: str) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    subscription = subscription_get(tenant=org.tenant)
    standing, usage = _standing(request)
    context: dict[str, Any] = {
        "nav_current": "billing",
        "subscription": subscription,
        "price": price(subscription.plan) if subscription else "",
        "meters": _meters(standing),
        "usage": usage,
        **_invoices(org.tenant),
        "dunning": _standing_notice(org.tenant, subscription),
    }
    context |= _payments(org, subscription)
    if context["provider"] is not None:
        context["checkout_return"] = CHECKOUT_RETURNS.get(request.GET.get("checkout", ""))
    if org.is_owner:
        current = subscription.plan.code if subscription else None
        context["plans"] = [(plan, price(plan)) for plan in plan_list(active_only=True) if plan.code != current]
    if request.user.is_staff:
        today = timezone.now().date()
        drifts = storage_drift_list(since=today - timedelta(days=DRIFT_DAYS), until=today, tenant=org.tenant)
        context["drift"] = drifts.order_by("-day").first()  # the latest day, not the largest drift
        context["drift_days"] = DRIFT_DAYS
    return render(request, "dashboard/billing/billing.html", context)


class PlanChangeForm(forms.Form):
    # The plan the confirmation was shown against: a change made meanwhile (another owner, staff) is not overridden.
    current = forms.CharField(required=False, max_length=32)


@org_view(min_role=Membership.Role.OWNER)
def plan_change(request: HttpRequest, slug: str, code: str) -> HttpResponse:
    """GET: what changing to `code` means (price, limits, what the organisation is already past); POST: change it (PRG)."""
    org = request.org  # type: ignore[attr-defined]
    plan = plan_get(code=code)
    if provider_get() is not None:
        raise Http404("Plans change through the payment provider here.")  # decision 0050: no plan without paying for it
    if plan is None or not plan.is_active:
        raise Http404("No such plan.")
    subscription = subscription_get(tenant=org.tenant)
    current = subscription.plan.code if subscription else ""
    if request.method == "POST":
        form = PlanChangeForm(request.POST)
        if form.is_valid() and form.cleaned_data["current"] == current:
            try:
                subscription_change_plan(tenant=org.tenant, plan_code=code, actor=request.user.get_username())
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"{org.tenant.slug} is now on the {plan.name} plan.")
                return redirect("dashboard:billing", slug)
        elif form.is_valid():
            form.add_error(None, "The plan changed since this page was shown: nothing was changed. Check the new plan below.")
        status = 400
    else:
        form, status = PlanChangeForm(initial={"current": current}), 200
    standing, _ = _standing(request)
    context = {
        "nav_current": "billing",
        "plan": plan,
        "price": price(plan),
        "subscription": subscription,
        "current": current,
        "form": form,
        "limits": [(s, _plan_limit(plan, s)) for s in standing],
        "over": over_limits(plan, standing),
    }
    return render(request, "dashboard/billing/plan_change.html", context, status=status)
