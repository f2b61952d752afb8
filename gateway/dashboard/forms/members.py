"""Forms of the members page: a member's role, an invitation."""

from __future__ import annotations

from django import forms

from accounts.models import Membership


def role_choices(*, is_owner: bool) -> list[tuple[str, str]]:
    """The roles a caller may hand out: only owners make owners (the service refuses the rest anyway)."""
    return [(value, label) for value, label in Membership.Role.choices if is_owner or value != Membership.Role.OWNER]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices, label="Role")

    def __init__(self, *args: object, is_owner: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["role"].choices = role_choices(is_owner=is_owner)  # type: ignore[attr-defined]


class InviteForm(RoleForm):
    email = forms.EmailField(max_length=254, label="Email address")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["role"].initial = Membership.Role.READER  # the least role unless someone chooses more

    field_order = ["email", "role"]
