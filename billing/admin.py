"""Django admin for staff: plans are data they edit (saving re-applies the limits to every subscriber), subscriptions to read."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import (
    Invoice,
    InvoiceLine,
    ManualPayment,
    Plan,
    ProviderEvent,
    StorageDrift,
    Subscription,
    SubscriptionPlanInterval,
    UsageRecord,
)
from billing.services import plan_update

PLAN_FIELDS = (
    "name",
    "monthly_price_minor",
    "currency",
    "storage_quota_bytes",
    "private_repositories_limit",
    "members_limit",
    "robots_limit",
    "pulls_per_window_authenticated",
    "pulls_per_window_anonymous",
    "egress_bytes_per_month_limit",
    "storage_overage_minor_per_gb",
    "egress_overage_minor_per_gb",
    "is_active",
    "stripe_price_id",
)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "monthly_price_minor",
        "currency",
        "storage_quota_bytes",
        "private_repositories_limit",
        "is_active",
    )
    search_fields = ("code", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> tuple[str, ...]:
        return ("code",) if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        """A new plan is inserted; a changed one goes through plan_update, so its subscribers get the new limits."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        changes = {name: getattr(obj, name) for name in form.changed_data if name in PLAN_FIELDS}
        plan_update(code=obj.code, changes=changes, actor=request.user.get_username())
        obj.refresh_from_db()


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("tenant", "plan", "status", "current_period_start", "current_period_end", "provider", "past_due_since")
    list_filter = ("status", "plan")
    search_fields = ("tenant__slug",)
    raw_id_fields = ("tenant",)

    def has_change_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        # Plan and status changes must write the tenant's limits and suspension: manage.py billing_plan or the services.
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """What the meter and the reconciliation write: for reading (an edit would falsify what is billed)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(_ReadOnlyAdmin):
    list_display = (
        "tenant",
        "repository",
        "hour",
        "pulls",
        "egress_proxied_bytes",
        "egress_redirect_bytes",
        "storage_byte_hours",
    )
    search_fields = ("tenant__slug", "repository")
    date_hierarchy = "hour"


@admin.register(StorageDrift)
class StorageDriftAdmin(_ReadOnlyAdmin):
    list_display = ("tenant", "day", "metered_bytes", "actual_bytes", "difference_bytes")
    search_fields = ("tenant__slug",)
    date_hierarchy = "day"


@admin.register(ProviderEvent)
class ProviderEventAdmin(_ReadOnlyAdmin):
    """Each payment-provider event as received and what it did (decision 0045)."""

    list_display = ("provider", "event_type", "event_id", "tenant", "outcome", "occurred_at", "detail")
    list_filter = ("provider", "event_type", "outcome")
    search_fields = ("event_id", "object_id", "tenant__slug")


@admin.register(ManualPayment)
class ManualPaymentAdmin(_ReadOnlyAdmin):
    """Bank transfers: requested, and paid once staff confirm them with `manage.py billing_payments paid`."""

    list_display = ("reference", "tenant", "plan", "status", "amount_minor", "currency", "paid_at", "marked_by")
    list_filter = ("status",)
    search_fields = ("reference", "tenant__slug", "bank_reference")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = ("position", "kind", "description", "quantity", "unit", "unit_price_minor", "amount_minor")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(_ReadOnlyAdmin):
    """Invoices for reading: they change only through billing.invoicing (and the payments slice's services)."""

    list_display = ("number", "tenant", "period_start", "status", "total_minor", "currency", "issued_at", "paid_at")
    list_filter = ("status", "issuer")
    search_fields = ("number", "tenant__slug")
    date_hierarchy = "period_start"
    inlines = (InvoiceLineInline,)


@admin.register(SubscriptionPlanInterval)
class SubscriptionPlanIntervalAdmin(_ReadOnlyAdmin):
    """The plans each subscription was on, and when: what proration bills from."""

    list_display = ("tenant", "plan", "started_at", "ended_at")
    search_fields = ("tenant__slug",)
    date_hierarchy = "started_at"
