"""Lock querysets for accounts' read-then-write services (house style rule 5: no-key locks, by pk)."""

from __future__ import annotations

from accounts.models import Invitation, Membership, RobotAccount, Tenant


def memberships_lock(*, tenant: Tenant) -> list[Membership]:
    """Every membership of `tenant`, locked in pk order (the owner count is read from these)."""
    return list(Membership.objects.select_for_update(no_key=True).filter(tenant=tenant).select_related("user").order_by("pk"))


def robot_lock(*, tenant: Tenant, name: str) -> RobotAccount | None:
    """The tenant's robot named `name`, locked, or None."""
    return RobotAccount.objects.select_for_update(no_key=True).filter(tenant=tenant, name=name).order_by("pk").first()


def tenant_lock(*, pk: int) -> Tenant | None:
    """The tenant row, locked (its settings and status are read, then written), or None."""
    return Tenant.objects.select_for_update(no_key=True).filter(pk=pk).order_by("pk").first()


def invitation_lock(*, pk: int) -> Invitation | None:
    """One invitation with its tenant, locked (accepting it happens once), or None."""
    return Invitation.objects.select_for_update(no_key=True, of=("self",)).select_related("tenant").filter(pk=pk).first()


def tenant_limit_lock(*, tenant: Tenant, field: str) -> int | None:
    """One plan limit of the tenant, its row locked FOR NO KEY UPDATE (count, then create, one at a time), or None."""
    return Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).values_list(field, flat=True).first()
