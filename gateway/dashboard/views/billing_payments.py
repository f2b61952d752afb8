"""Paying from the billing page (decisions 0045, 0050): owners subscribe or change plan through the gateway's payment
provider (Stripe Checkout, or a bank-transfer request whose reference the page then shows) and open Stripe's page for
payment methods. POST only; 404 when the gateway takes no payments (provider_get() is None: the plan changes directly)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from billing.payments import PaymentProvider, checkout_start, portal_open, provider_get
from gateway.core.errors import ApplicationError
from gateway.dashboard.access import org_view

PROVIDER_LABELS = {"stripe": "Stripe", "manual": "bank transfer"}


def provider_label(provider: PaymentProvider) -> str:
    """How the page names the provider: "Subscribe with Stripe", "… with bank transfer"."""
    return PROVIDER_LABELS.get(provider.name, provider.name)


class CheckoutForm(forms.Form):
    plan = forms.SlugField(max_length=32)


def _provider() -> PaymentProvider:
    provider = provider_get()
    if provider is None:
        raise Http404("This gateway takes no payments.")
    return provider


def _back(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(reverse("dashboard:billing", args=[slug]))


@org_view(min_role=Membership.Role.OWNER)
@require_POST
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """To the provider's checkout for the chosen plan (manual: back to the page with the transfer's reference)."""
    _provider()
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a plan to subscribe to: nothing was changed.")
        return redirect("dashboard:billing", slug)
    try:
        url = checkout_start(
            tenant=request.org.tenant,  # type: ignore[attr-defined]
            plan_code=form.cleaned_data["plan"],
            actor=request.user.get_username(),
            return_url=_back(request, slug),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:billing", slug)
    return redirect(url)


@org_view(min_role=Membership.Role.OWNER)
@require_POST
def payment_methods(request: HttpRequest, slug: str) -> HttpResponse:
    """To the provider's page for the organisation's payment methods (Stripe's billing portal)."""
    if not _provider().has_portal:
        raise Http404("Payments here are by bank transfer: there are no payment methods to manage.")
    try:
        url = portal_open(tenant=request.org.tenant, return_url=_back(request, slug))  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:billing", slug)
    return redirect(url)
