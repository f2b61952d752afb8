"""Creating an organisation: the slug checked as the API's tenant create checks it (accounts.validators), and not taken."""

from __future__ import annotations

from django import forms

from accounts.selectors import tenant_get_any_status
from accounts.validators import validate_tenant_slug
from gateway.core.errors import ValidationError as DomainValidationError


def slug_problem(slug: str) -> tuple[str, str]:
    """("valid" | "invalid" | "taken", the reason) for a proposed slug; a slug of a tenant being deleted is taken too."""
    try:
        validate_tenant_slug(slug)
    except DomainValidationError as exc:
        return "invalid", exc.message
    if tenant_get_any_status(slug=slug) is not None:
        return "taken", f"Tenant slug {slug!r} is taken; choose another."
    return "valid", f"{slug!r} is available."


class OrgCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=63,
        strip=False,
        help_text="Lower-case letters, digits and '-' (a DNS label, 2 to 63 characters). It names your registry and never changes.",
    )
    name = forms.CharField(max_length=200, required=False, label="Display name", help_text="Optional; the slug if empty.")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        state, reason = slug_problem(slug)
        if state != "valid":
            raise forms.ValidationError(reason, code=state)
        return slug
