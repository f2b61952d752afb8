"""Organisation settings: display name and download mode (admins and owners), deletion with a typed confirmation (owners).

The same services as the API's tenant update and delete: `tenant_update` under the tenant's row
lock, and `tenant_delete_start`, which marks the tenant deleting and queues the same purge job.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.locks import tenant_lock
from accounts.models import Membership
from accounts.tenants import MAX_NAME, tenant_update
from gateway.core.errors import ValidationError as DomainValidationError
from gateway.dashboard.access import org_view
from gateway.registry.services.tenant_delete import tenant_delete_start

DOWNLOAD_MODES = {"proxied": False, "redirect": True}


class SettingsForm(forms.Form):
    name = forms.CharField(label="Display name", max_length=MAX_NAME, strip=True)
    download_mode = forms.ChoiceField(
        label="Image downloads",
        widget=forms.RadioSelect,
        choices=[
            ("proxied", "Proxied: layers stream through Wharf, so clients only ever talk to this registry's address."),
            (
                "redirect",
                "Redirected: clients are sent to a short-lived signed link and fetch layers straight from storage (faster, no gateway bandwidth).",
            ),
        ],
    )


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the organisation's slug to confirm", max_length=100)

    def __init__(self, *args: object, slug: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.slug = slug

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.slug:
            raise forms.ValidationError(f"That is not {self.slug!r}: nothing was deleted.")
        return typed


def _page(request: HttpRequest, form: SettingsForm, delete_form: DeleteForm, status: int = 200) -> HttpResponse:
    context = {"nav_current": "settings", "form": form, "delete_form": delete_form}
    return render(request, "dashboard/settings/settings.html", context, status=status)


def _initial(request: HttpRequest) -> dict[str, str]:
    tenant = request.org.tenant  # type: ignore[attr-defined]
    return {"name": tenant.name or tenant.slug, "download_mode": "redirect" if tenant.redirect_blob_downloads else "proxied"}


@org_view(min_role=Membership.Role.ADMIN)
def settings(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "POST":
        return _page(request, SettingsForm(initial=_initial(request)), DeleteForm(slug=slug))
    form = SettingsForm(request.POST)
    if form.is_valid():
        try:
            with transaction.atomic():
                locked = tenant_lock(pk=request.org.tenant.pk)  # type: ignore[attr-defined]
                assert locked is not None  # org_view found it a moment ago; a purge only starts after marking it
                tenant_update(
                    tenant=locked,
                    name=form.cleaned_data["name"],
                    redirect_blob_downloads=DOWNLOAD_MODES[form.cleaned_data["download_mode"]],
                    actor=request.user.get_username(),
                )
        except DomainValidationError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, "Settings saved.")
            return redirect("dashboard:settings", slug)
    return _page(request, form, DeleteForm(slug=slug), status=400)


@org_view(min_role=Membership.Role.OWNER)
def settings_delete(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "POST":
        return redirect("dashboard:settings", slug)
    form = DeleteForm(request.POST, slug=slug)
    if not form.is_valid():
        return _page(request, SettingsForm(initial=_initial(request)), form, status=400)
    tenant_delete_start(tenant=request.org.tenant, actor=request.user.get_username())  # type: ignore[attr-defined]
    messages.success(
        request, f"Deleting {slug}: its repositories, images and stored objects are being removed in the background."
    )
    return redirect("dashboard:home")
