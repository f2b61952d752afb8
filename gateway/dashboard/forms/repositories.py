"""Forms of the repository pages: the list's search, a repository's settings, the typed confirmation of its deletion."""

from __future__ import annotations

from django import forms

from gateway.registry.models import Repository

# sort key → the repository list's ordering (pk last: a total order, so pages never overlap)
SORTS = {
    "name": ("name", "pk"),
    "-name": ("-name", "-pk"),
    "size": ("stored_bytes", "pk"),
    "-size": ("-stored_bytes", "-pk"),
    "pushed": ("pushed_or_created", "pk"),
    "-pushed": ("-pushed_or_created", "-pk"),
}
SORT_LABELS = {
    "name": "Name (A–Z)",
    "-name": "Name (Z–A)",
    "-size": "Size (largest first)",
    "size": "Size (smallest first)",
    "-pushed": "Last push (newest first)",
    "pushed": "Last push (oldest first)",
}


class RepositorySearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=255, strip=True, label="Search")
    match = forms.ChoiceField(
        required=False, choices=[("contains", "Name contains"), ("prefix", "Name starts with")], label="Match"
    )
    sort = forms.ChoiceField(required=False, choices=list(SORT_LABELS.items()), label="Sort by")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].replace("\x00", "")  # PostgreSQL cannot compare with a NUL

    def ordering(self) -> tuple[str, str]:
        """The ordering asked for (by name when none or a bad one); call after is_valid()."""
        return SORTS[getattr(self, "cleaned_data", {}).get("sort") or "name"]


class RepositorySettingsForm(forms.Form):
    """What the API's repository update takes: visibility and description (at most 1000 characters)."""

    visibility = forms.ChoiceField(
        choices=Repository.Visibility.choices, help_text="Public repositories can be pulled by anyone, without signing in."
    )
    description = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="At most 1000 characters.",
    )


class RepositoryDeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the repository's name to confirm", max_length=255, strip=True)

    def __init__(self, *args: object, name: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.name = name

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"]
        if value != self.name:
            raise forms.ValidationError(f"Type {self.name} exactly to delete it; you typed {value!r}.")
        return value
