"""Policy forms: a retention policy's values and an immutable-tag rule's patterns (the services check them again)."""

from __future__ import annotations

from typing import Any

from django import forms

from gateway.registry.models import ImmutableTagRule, RetentionPolicy
from gateway.registry.services.immutability import REPOSITORY_PATTERN_MAX, TAG_PATTERN_MAX
from gateway.registry.services.retention import MAX_DAYS, MAX_KEEP_LAST

VALUE_FIELDS = ("enabled", "keep_last", "older_than_days", "delete_regex", "keep_regex", "untagged_days")


def _count(label: str, maximum: int, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=0, max_value=maximum, required=False, help_text=help_text)


def _regex(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=255,
        required=False,
        strip=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )


class RetentionPolicyForm(forms.Form):
    """A retention policy; `repository` (its scope) only when creating one: the scope of a saved policy is fixed."""

    repository = forms.CharField(
        label="Repository",
        max_length=255,
        required=False,
        help_text="Leave blank for the whole organisation; a repository's own policy wins over the organisation's.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    keep_last = _count("Keep the last N tags", MAX_KEEP_LAST, "The N most recently pushed tags of each repository are kept.")
    older_than_days = _count("Delete only tags older than (days)", MAX_DAYS, "Blank: any age.")
    delete_regex = _regex("Delete only tags matching", "A regular expression the whole tag name must match; blank: every tag.")
    keep_regex = _regex("Never delete tags matching", "A regular expression; matching tags are always kept. Blank: no exemption.")
    untagged_days = _count("Keep untagged manifests (days)", MAX_DAYS, "Garbage collection keeps untagged manifests this long.")
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, data: Any = None, *, policy: RetentionPolicy | None = None) -> None:
        initial = None
        if policy is not None:
            initial = {**{f: getattr(policy, f) for f in VALUE_FIELDS}, "version": policy.updated_at.isoformat()}
        super().__init__(data, initial=initial)
        self.policy = policy
        if policy is not None:
            del self.fields["repository"]
        else:
            del self.fields["version"]

    def clean_repository(self) -> str | None:
        return self.cleaned_data["repository"].strip() or None

    def values(self) -> dict[str, Any]:
        """The policy's values as retention_policy_check takes them (blank numbers: None, blank patterns: "")."""
        return {f: self.cleaned_data[f] for f in VALUE_FIELDS}


class ImmutableRuleForm(forms.Form):
    """An immutable-tag rule: fnmatch patterns of repository names (blank: all) and tag names."""

    repository_pattern = forms.CharField(
        label="Repository pattern",
        max_length=REPOSITORY_PATTERN_MAX,
        required=False,
        strip=False,
        help_text="fnmatch, e.g. team/* (* also crosses /). Blank: every repository.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    tag_pattern = forms.CharField(
        label="Tag pattern",
        max_length=TAG_PATTERN_MAX,
        strip=False,
        help_text="fnmatch on the whole tag name, case-sensitive, e.g. v* or release-[0-9]*.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, data: Any = None, *, rule: ImmutableTagRule | None = None) -> None:
        initial = None
        if rule is not None:
            initial = {"repository_pattern": rule.repository_pattern, "tag_pattern": rule.tag_pattern}
            initial["version"] = rule.updated_at.isoformat()
        super().__init__(data, initial=initial)
        self.rule = rule
        if rule is None:
            del self.fields["version"]
