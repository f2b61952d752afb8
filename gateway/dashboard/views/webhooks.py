"""Webhooks pages (admins and owners, like the API): list, create, edit, delete, send a test event, the delivery log, redeliver.

The signing secret is write-only: generated (or given) on create and shown once on the next page
(kept in the session for that one view), never rendered into a form. A test event is queued like the
API's (the Celery worker sends it), so the log shows it pending and polls until it is not.
Edits lock the row and refuse when it changed since the form was opened (the form's `version`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from gateway.core.errors import ApplicationError
from gateway.dashboard.access import org_view
from gateway.dashboard.forms.webhooks import WebhookForm, apply_domain_error
from gateway.webhooks import selectors
from gateway.webhooks.locks import webhook_endpoint_lock
from gateway.webhooks.models import WebhookDelivery, WebhookEndpoint
from gateway.webhooks.services import (
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_ping,
    webhook_endpoint_update,
)

ADMIN = Membership.Role.ADMIN
ENDPOINTS_PER_PAGE = 50
DELIVERIES_PER_PAGE = 20
SECRET_SESSION_KEY = "dashboard.webhook_secret"
STALE = (
    "Someone changed this webhook after you opened it: nothing was saved. Its current values are shown; make your change again."
)


def _endpoint(request: HttpRequest, webhook_id: int) -> WebhookEndpoint:
    found = selectors.webhook_endpoint_get(tenant=request.org.tenant, endpoint_id=webhook_id)  # type: ignore[attr-defined]
    if found is None:
        raise Http404("No such webhook.")
    return found


def _actor(request: HttpRequest) -> str:
    return str(request.user.username)


def _version(endpoint: WebhookEndpoint) -> str:
    return endpoint.updated_at.isoformat()


def _deliveries(request: HttpRequest, endpoint: WebhookEndpoint) -> dict[str, Any]:
    deliveries = selectors.webhook_delivery_list(tenant=request.org.tenant, endpoint=endpoint).order_by("-pk")  # type: ignore[attr-defined]
    page = Paginator(deliveries.defer("payload"), DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "endpoint": endpoint,
        "deliveries": page,
        "polling": any(d.state == WebhookDelivery.State.PENDING for d in page),
    }


@org_view(min_role=ADMIN)
def webhooks(request: HttpRequest, slug: str) -> HttpResponse:
    """The organisation's webhooks with each one's newest delivery."""
    endpoints = selectors.webhook_endpoint_list_with_last_delivery(tenant=request.org.tenant).order_by("-pk")  # type: ignore[attr-defined]
    page = Paginator(endpoints, ENDPOINTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboard/webhooks/list.html", {"nav_current": "webhooks", "endpoints": page})


@org_view(min_role=ADMIN)
def webhook_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Register an endpoint; its secret is shown once on the page this redirects to."""
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = webhook_endpoint_create(tenant=request.org.tenant, actor=_actor(request), **form.values())  # type: ignore[attr-defined]
        except ApplicationError as exc:
            apply_domain_error(form, exc)
        else:
            request.session[SECRET_SESSION_KEY] = {"id": created.endpoint.pk, "secret": created.secret}
            messages.success(request, f"Webhook to {created.endpoint.url} created.")
            return redirect("dashboard:webhook", slug, created.endpoint.pk)
    return render(request, "dashboard/webhooks/form.html", {"nav_current": "webhooks", "form": form, "endpoint": None})


class _Stale(Exception):
    pass


def _changed(endpoint: WebhookEndpoint, values: dict[str, Any]) -> dict[str, Any]:
    """The values that differ from the row (a given secret always counts): the audit log names only those."""
    same = {
        "url": values["url"].strip() == endpoint.url,
        "events": sorted(set(values["events"])) == sorted(endpoint.events),
        "description": values["description"] == endpoint.description,
        "enabled": values["enabled"] == endpoint.enabled,
    }
    return {k: v for k, v in values.items() if not same.get(k, False)}


def _update(request: HttpRequest, endpoint: WebhookEndpoint, form: WebhookForm) -> bool:
    """Save the form's values under the row lock; _Stale if the row changed since the form was opened."""
    try:
        with transaction.atomic():
            locked = webhook_endpoint_lock(tenant=request.org.tenant, endpoint_id=endpoint.pk)  # type: ignore[attr-defined]
            if locked is None:
                raise Http404("No such webhook.")
            if form.cleaned_data.get("version") != _version(locked):
                raise _Stale
            changed = _changed(locked, form.values())
            if changed:
                webhook_endpoint_update(endpoint=locked, actor=_actor(request), **changed)
    except ApplicationError as exc:
        apply_domain_error(form, exc)
        return False
    return True


@org_view(min_role=ADMIN)
def webhook(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """One webhook: its editor, the secret once after creation, and its delivery log."""
    endpoint = _endpoint(request, webhook_id)
    initial = {k: getattr(endpoint, k) for k in ("url", "events", "description", "enabled")}
    if request.method == "POST":
        form = WebhookForm(request.POST, editing=True, initial=initial)
        try:
            if form.is_valid() and _update(request, endpoint, form):
                messages.success(request, "Webhook saved.")
                return redirect("dashboard:webhook", slug, endpoint.pk)
        except _Stale:
            messages.error(request, STALE)
            return redirect("dashboard:webhook", slug, endpoint.pk)
    else:
        form = WebhookForm(initial={**initial, "version": _version(endpoint)}, editing=True)
    shown = request.session.pop(SECRET_SESSION_KEY, None) if request.method == "GET" else None
    secret = shown["secret"] if shown and shown.get("id") == endpoint.pk else None
    context = {"nav_current": "webhooks", "form": form, "secret": secret, **_deliveries(request, endpoint)}
    return render(request, "dashboard/webhooks/detail.html", context)


@org_view(min_role=ADMIN)
def webhook_deliveries(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """The delivery log (htmx: the partial the page polls while a delivery is pending; else the webhook page)."""
    endpoint = _endpoint(request, webhook_id)
    if not request.htmx:  # type: ignore[attr-defined]
        page = urlencode({"page": request.GET.get("page", "1")})
        return redirect(f"{reverse('dashboard:webhook', args=[slug, endpoint.pk])}?{page}")
    return render(request, "dashboard/webhooks/_deliveries.html", _deliveries(request, endpoint))


@org_view(min_role=ADMIN)
def webhook_delete(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """GET: the confirmation; POST: remove the webhook and its delivery log."""
    endpoint = _endpoint(request, webhook_id)
    if request.method == "POST":
        with transaction.atomic():
            locked = webhook_endpoint_lock(tenant=request.org.tenant, endpoint_id=endpoint.pk)  # type: ignore[attr-defined]
            if locked is None:
                raise Http404("No such webhook.")
            webhook_endpoint_delete(endpoint=locked, actor=_actor(request))
        messages.success(request, f"Webhook to {endpoint.url} deleted, with its delivery log.")
        return redirect("dashboard:webhooks", slug)
    return render(request, "dashboard/webhooks/delete.html", {"nav_current": "webhooks", "endpoint": endpoint})


@org_view(min_role=ADMIN)
@require_POST
def webhook_test(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """Queue a `ping` to this endpoint (the worker sends it; the log shows it pending until then)."""
    endpoint = _endpoint(request, webhook_id)
    try:
        webhook_endpoint_ping(endpoint=endpoint, actor=_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Test event queued: the delivery log below shows its result when it has been sent.")
    return redirect("dashboard:webhook", slug, endpoint.pk)


@org_view(min_role=ADMIN)
@require_POST
def webhook_redeliver(request: HttpRequest, slug: str, webhook_id: int, delivery_id: int) -> HttpResponse:
    """Send a delivered or failed delivery again (same event id and body)."""
    endpoint = _endpoint(request, webhook_id)
    delivery = selectors.webhook_delivery_get(tenant=request.org.tenant, endpoint=endpoint, delivery_id=delivery_id)  # type: ignore[attr-defined]
    if delivery is None:
        raise Http404("No such delivery.")
    try:
        webhook_delivery_redeliver(delivery=delivery, actor=_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Delivery {delivery.pk} ({delivery.event}) queued again.")
    return redirect("dashboard:webhook", slug, endpoint.pk)
