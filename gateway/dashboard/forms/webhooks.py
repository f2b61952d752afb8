"""Webhook forms: the endpoint editor (URL, events, write-only secret, enabled) and the delivery filter."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms

from gateway.core.errors import ApplicationError
from gateway.webhooks.models import EVENTS
from gateway.webhooks.services import MAX_SECRET, MIN_SECRET

EVENT_CHOICES = [
    *((name, f"{name}: {what}") for name, what in EVENTS.items()),
    ("*", "* — every event, including ones added later"),
]


def apply_domain_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's error on the form: on the field it names (`extra["errors"]`), else above the form."""
    named = exc.extra.get("errors") if isinstance(exc.extra.get("errors"), dict) else None
    if named:
        for field, message in named.items():
            form.add_error(field if field in form.fields else None, str(message))
    else:
        form.add_error(None, exc.message)


class WebhookForm(forms.Form):
    """Create (`editing=False`: a blank secret is generated) or edit (a blank secret keeps the current one)."""

    url = forms.CharField(
        label="Payload URL",
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://ci.example.com/hooks/wharf", "autocomplete": "off"}),
        help_text="http(s); it must resolve to public addresses.",
    )
    events = forms.MultipleChoiceField(label="Events", choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    description = forms.CharField(label="Description", max_length=200, required=False)
    secret = forms.CharField(
        label="Signing secret",
        required=False,
        strip=False,
        min_length=MIN_SECRET,
        max_length=MAX_SECRET,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    # The row's updated_at when the form was opened: a save refuses if someone changed it since (no lost updates).
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.fields["secret"].help_text = (
            "Leave blank to keep the current secret; a new one replaces it at once."
            if editing
            else f"Leave blank to have one generated ({MIN_SECRET}–{MAX_SECRET} characters otherwise); it is shown once."
        )
        if not editing:
            del self.fields["version"]

    def clean_url(self) -> str:
        """Only http(s) with a host (the service checks again, and applies the outbound address policy)."""
        url = self.cleaned_data["url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise forms.ValidationError("Enter an http(s) URL with a host, like https://ci.example.com/hooks/wharf.")
        return url

    def values(self) -> dict[str, Any]:
        """The service's keyword arguments (no secret when it is left blank)."""
        data = self.cleaned_data
        out = {k: data[k] for k in ("url", "events", "description", "enabled")}
        if data.get("secret"):
            out["secret"] = data["secret"]
        return out
