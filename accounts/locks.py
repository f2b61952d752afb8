"""Lock querysets for accounts' read-then-write services (house style rule 5: no-key locks, by pk)."""

from __future__ import annotations

from accounts.models import Membership, RobotAccount, Tenant


def memberships_lock(*, tenant: Tenant) -> list[Membership]:
    """Every membership of `tenant`, locked in pk order (the owner count is read from these)."""
    return list(Membership.objects.select_for_update(no_key=True).filter(tenant=tenant).select_related("user").order_by("pk"))


def robot_lock(*, tenant: Tenant, name: str) -> RobotAccount | None:
    """The tenant's robot named `name`, locked, or None."""
    return RobotAccount.objects.select_for_update(no_key=True).filter(tenant=tenant, name=name).order_by("pk").first()


def tenant_lock(*, tenant: Tenant) -> Tenant | None:
    """The tenant's row, locked (re-read), or None if it is gone."""
    return Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).order_by("pk").first()
