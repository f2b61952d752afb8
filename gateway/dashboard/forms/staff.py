"""Forms of the staff console: list filters, a suspension's reason, a tenant's storage quota."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from accounts.models import Tenant
from accounts.tenant_admin import MAX_REASON
from gateway.registry.models import JobRun
from gateway.registry.services.jobs import JOB_KINDS

ANY = [("", "Any")]
# Binary units: what the dashboard shows bytes in (templatetags/wharf.py `bytes_binary`).
UNIT_FACTORS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
NO_QUOTA = "none"
UNIT_CHOICES = [*((u, u) for u in UNIT_FACTORS), (NO_QUOTA, "No quota (unlimited)")]
MAX_QUOTA = 2**63 - 1  # the column is a PostgreSQL bigint


class TenantFilterForm(forms.Form):
    q = forms.CharField(label="Search slug or name", required=False, max_length=200)
    status = forms.ChoiceField(label="Status", required=False, choices=ANY + list(Tenant.Status.choices))


class JobFilterForm(forms.Form):
    state = forms.ChoiceField(label="State", required=False, choices=ANY + list(JobRun.State.choices))
    kind = forms.ChoiceField(label="Kind", required=False, choices=ANY + [(k, k) for k in JOB_KINDS])
    tenant = forms.SlugField(label="Tenant slug", required=False, max_length=63)


class SuspendForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept with the tenant and in the audit log; the tenant's registry clients are told only that it is suspended.",
        error_messages={"required": "Say why the tenant is suspended."},
    )


class QuotaForm(forms.Form):
    """A quota as an amount and a binary unit, or the unit `none` for unlimited; `current` is the quota the operator saw."""

    amount = forms.DecimalField(label="Amount", required=False, min_value=Decimal(0), max_digits=20, decimal_places=3)
    unit = forms.ChoiceField(label="Unit", choices=UNIT_CHOICES, initial="GiB")
    # The quota shown when the form was rendered ("" for none): a change made meanwhile (billing, another operator) is not overwritten.
    current = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        unit, amount = data.get("unit"), data.get("amount")
        if unit is None:
            return data
        if unit == NO_QUOTA:
            data["storage_quota_bytes"] = None
            return data
        if amount is None:
            if "amount" not in self.errors:
                self.add_error("amount", "Give an amount, or choose “No quota”.")
            return data
        quota = int(amount * UNIT_FACTORS[unit])
        if quota > MAX_QUOTA:
            self.add_error("amount", "That quota is too large.")
        data["storage_quota_bytes"] = quota
        return data

    def clean_current(self) -> int | None:
        value = (self.cleaned_data.get("current") or "").strip()
        if not value:
            return None
        if not value.isdigit():
            # A hidden field: its error is the form's, where the page shows it.
            self.add_error(None, "The form is out of date; reload the page.")
            return None
        return int(value)


def quota_initial(quota: int | None) -> dict[str, Any]:
    """The form's initial values for a quota: the largest unit that divides it exactly."""
    if quota is None:
        return {"unit": NO_QUOTA, "current": ""}
    unit = next((u for u in reversed(UNIT_FACTORS) if quota and quota % UNIT_FACTORS[u] == 0), "B")
    return {"amount": quota // UNIT_FACTORS[unit], "unit": unit, "current": str(quota)}
