"""The form shape robots and personal access tokens share: name, scopes (checkboxes), repository patterns, expiry in days."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import TokenScope
from accounts.validators import validate_repository_patterns
from gateway.core.errors import ValidationError

SCOPE_HELP = {
    TokenScope.PULL: "pull images",
    TokenScope.PUSH: "push images",
    TokenScope.DELETE: "delete tags and manifests",
    TokenScope.API_READ: "read the admin API",
    TokenScope.API_WRITE: "change things through the admin API",
    TokenScope.ADMIN: "platform operators' endpoints (staff only)",
}


def scope_choices(scopes: list[str]) -> list[tuple[str, str]]:
    return [(s, f"{s} — {SCOPE_HELP[TokenScope(s)]}") for s in scopes]


class PatternsField(forms.CharField):
    """Repository patterns, one per line (or comma-separated); empty means every repository."""

    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [p.strip() for p in text.replace(",", "\n").splitlines() if p.strip()]

    def validate(self, value: Any) -> None:
        try:
            validate_repository_patterns(value)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list | tuple) else value


def _expiry_field(help_text: str) -> forms.IntegerField:
    return forms.IntegerField(label="Expires in (days)", min_value=1, max_value=3650, required=False, help_text=help_text)


class CredentialForm(forms.Form):
    """Create a robot or a token: `scopes` are the ones the caller may grant."""

    name = forms.CharField(label="Name", max_length=100)
    scopes = forms.MultipleChoiceField(label="Scopes", widget=forms.CheckboxSelectMultiple)
    repositories = PatternsField(
        label="Repository patterns", required=False, help_text="One per line, e.g. team/* — empty: every repository."
    )
    expires_in_days = _expiry_field("1 to 3650; empty: never expires.")

    def __init__(self, *args: Any, scopes: list[str], initial_scopes: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = scope_choices(scopes)  # type: ignore[attr-defined]
        self.fields["scopes"].initial = initial_scopes or []


class RobotEditForm(forms.Form):
    """Change a robot: scopes and patterns as given; expiry unchanged unless days are given or "never" is ticked."""

    scopes = forms.MultipleChoiceField(label="Scopes", widget=forms.CheckboxSelectMultiple)
    repositories = PatternsField(label="Repository patterns", required=False, help_text="One per line; empty: every repository.")
    expires_in_days = _expiry_field("From now, 1 to 3650; empty: keep the current expiry.")
    never_expires = forms.BooleanField(label="Never expires", required=False)

    def __init__(self, *args: Any, scopes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = scope_choices(scopes)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("never_expires") and data.get("expires_in_days"):
            raise forms.ValidationError("Give a number of days or tick “Never expires”, not both.")
        return data

    def changes(self) -> dict[str, Any]:
        """The keyword arguments of robot_update."""
        data = self.cleaned_data
        changes: dict[str, Any] = {"scopes": data["scopes"], "repositories": data["repositories"]}
        if data.get("never_expires"):
            changes["expires_in_days"] = None
        elif data.get("expires_in_days"):
            changes["expires_in_days"] = data["expires_in_days"]
        return changes
