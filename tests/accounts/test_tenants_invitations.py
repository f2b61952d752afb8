"""accounts.tenants (update, deleting mark) and accounts.invitations (create, revoke, accept) as services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.invitations import invitation_accept, invitation_create, invitation_revoke
from accounts.models import AuditEvent, Invitation, Membership, Tenant
from accounts.tenants import tenant_deleting_mark, tenant_update
from gateway.core.errors import ApplicationError, Conflict, Gone, NotFound, ValidationError
from tests.factories import UserFactory, make_member

R = Membership.Role


@pytest.mark.django_db
def test_tenant_update_cleans_audits_changes_only(tenant):
    tenant_update(tenant=tenant, name="  Acme Inc  ", redirect_blob_downloads=True, actor="owner")
    tenant.refresh_from_db()
    assert tenant.name == "Acme Inc" and tenant.redirect_blob_downloads is True
    tenant_update(tenant=tenant, name="Acme Inc", redirect_blob_downloads=True, actor="owner")
    assert AuditEvent.objects.filter(action="tenant.update").count() == 1
    for bad in ("", "   ", "x" * 201, "a\x00b"):
        with pytest.raises(ValidationError):
            tenant_update(tenant=tenant, name=bad)


@pytest.mark.django_db
def test_tenant_deleting_mark_is_once(tenant):
    assert tenant_deleting_mark(tenant=tenant, actor="owner") is True
    assert tenant_deleting_mark(tenant=tenant, actor="owner") is False
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.DELETING
    assert AuditEvent.objects.filter(action="tenant.delete", detail__previous="active").count() == 1


@pytest.mark.django_db
def test_invitation_expiry_is_a_setting_and_mail_waits_for_commit(tenant, settings, mailoutbox):
    settings.GATEWAY_INVITATION_DAYS = 2
    issued = invitation_create(tenant=tenant, email="a@example.com", role=R.READER, by_role=R.ADMIN)
    left = issued.invitation.expires_at - timezone.now()
    assert timedelta(days=2) - timedelta(minutes=1) < left <= timedelta(days=2)
    assert mailoutbox == []  # the test's transaction never commits: no mail for a rolled-back invitation


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"email": "not an email", "role": R.READER, "by_role": R.OWNER}, ValidationError),
        ({"email": "a@example.com", "role": "emperor", "by_role": R.OWNER}, ValidationError),
        ({"email": "a@example.com", "role": R.OWNER, "by_role": R.ADMIN}, ApplicationError),
        ({"email": "owner@example.com", "role": R.READER, "by_role": R.OWNER}, Conflict),
    ],
)
def test_invitation_create_refusals(tenant, kwargs, error):
    with pytest.raises(error):
        invitation_create(tenant=tenant, **kwargs)
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_accept_is_once_and_only_for_the_addressee(tenant):
    ivy = UserFactory(username="ivy", email="Ivy@Example.com")
    issued = invitation_create(tenant=tenant, email="ivy@example.com", role=R.WRITER, by_role=R.OWNER)
    with pytest.raises(NotFound):
        invitation_accept(user=UserFactory(username="eve"), token=issued.token)
    membership = invitation_accept(user=ivy, token=issued.token)
    assert membership.role == R.WRITER and membership.tenant == tenant
    with pytest.raises(Gone):
        invitation_accept(user=ivy, invitation_id=issued.invitation.pk)
    invitation_revoke(tenant=tenant, invitation_id=issued.invitation.pk)  # accepted: nothing to revoke
    assert Invitation.objects.get().status() == Invitation.Status.ACCEPTED
    assert not AuditEvent.objects.filter(action="invitation.revoke").exists()


@pytest.mark.django_db
def test_accept_refuses_inactive_users_and_deleting_tenants(tenant):
    sleeper = UserFactory(username="zed", email="zed@example.com", is_active=False)
    issued = invitation_create(tenant=tenant, email="zed@example.com", role=R.READER, by_role=R.OWNER)
    with pytest.raises(NotFound):
        invitation_accept(user=sleeper, token=issued.token)
    sleeper.is_active = True
    sleeper.save()
    tenant_deleting_mark(tenant=tenant)
    with pytest.raises(Gone):
        invitation_accept(user=sleeper, token=issued.token)
    assert not Membership.objects.filter(user=sleeper).exists()


@pytest.mark.django_db
def test_a_member_added_meanwhile_cannot_accept_twice(tenant):
    issued = invitation_create(tenant=tenant, email="mo@example.com", role=R.READER, by_role=R.OWNER)
    mo = make_member(tenant, R.ADMIN, username="mo", email="mo@example.com")
    with pytest.raises(Conflict):
        invitation_accept(user=mo, invitation_id=issued.invitation.pk)
    assert Membership.objects.get(user=mo).role == R.ADMIN


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_invitations_of_one_address_leave_one_open(tenant):
    """The second of two racing creates finds the first's row (unique open invitation per address): one open, no 500."""
    import threading

    from django.db import connection

    barrier, results = threading.Barrier(2), []

    def invite() -> None:
        try:
            barrier.wait()
            invitation_create(tenant=tenant, email="race@example.com", role=R.READER, by_role=R.OWNER)
            results.append("ok")
        except Conflict:
            results.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=invite) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) in (["conflict", "ok"], ["ok", "ok"])
    assert Invitation.objects.filter(email="race@example.com").pending().count() == 1
