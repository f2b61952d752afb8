"""Abstract bases every model of ours builds on."""

from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TenantOwnedModel(TimeStampedModel):
    """Anything that belongs to one tenant carries it, non-null (house style rule 8)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


def changes_save(instance: models.Model, changes: dict[str, object]) -> dict[str, object]:
    """Set and save (with `updated_at`) only the fields of `changes` whose value differs; returns those (empty: nothing saved)."""
    changed = {k: v for k, v in changes.items() if getattr(instance, k) != v}
    if changed:
        for field, value in changed.items():
            setattr(instance, field, value)
        instance.save(update_fields=[*changed, "updated_at"])
    return changed
