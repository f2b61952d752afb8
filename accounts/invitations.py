"""Invitations to join a tenant (docs/decisions/0022): created by admins and owners, accepted once by the invitee.

An invitation is addressed to an email and carries a secret token for the emailed link; only
the token's SHA-256 is kept. Inviting an address that has an open invitation replaces it (the
old token stops working). The invitee accepts as the signed-in user whose email is the
invitation's, by id or by token; an accepted, revoked or expired invitation is gone (410).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.conf import app_settings
from accounts.locks import invitation_lock
from accounts.models import Invitation, Membership, Tenant, User
from accounts.secrets import hash_secret, new_secret
from accounts.services import members_limit_check
from gateway.core.errors import ApplicationError, Conflict, Gone, NotFound, ValidationError

INVITATION_PREFIX = "wharf_inv_"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once, never stored


def _clean_email(email: str) -> str:
    clean = (email or "").strip().lower() if isinstance(email, str) else ""
    try:
        validate_email(clean)
    except Exception:
        raise ValidationError(f"{email!r} is not an email address.") from None
    return clean


def _is_member(tenant: Tenant, email: str) -> bool:
    return Membership.objects.filter(tenant=tenant, user__email__iexact=email, user__is_active=True).exists()


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, email: str, role: str, by_role: str, invited_by: User | None = None, actor: str | None = None
) -> IssuedInvitation:
    """Invite `email` to `tenant` as `role` (only owners invite owners; members → Conflict), replacing an open invitation; mails the token after commit; audited."""
    clean = _clean_email(email)
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}.")
    if role == Membership.Role.OWNER and by_role != Membership.Role.OWNER:
        raise ApplicationError("Only an owner may invite an owner.")
    if _is_member(tenant, clean):
        raise Conflict(f"{clean} is already a member of {tenant.slug!r}.")
    now = timezone.now()
    replaced = list(
        Invitation.objects.select_for_update(no_key=True)
        .filter(tenant=tenant, email=clean, accepted_at__isnull=True, revoked_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # Pending invitations count as members to be: a full organisation sends none it could not honour. After the
    # invitation rows, before the tenant's: the lock order invitation_accept takes too.
    members_limit_check(tenant=tenant, pending_invitations=True, except_email=clean)
    Invitation.objects.filter(pk__in=replaced).update(revoked_at=now, updated_at=now)
    token = new_secret(INVITATION_PREFIX)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                tenant=tenant,
                email=clean,
                role=role,
                token_hash=hash_secret(token),
                invited_by=invited_by,
                expires_at=now + timedelta(days=app_settings.invitation_days),
            )
    except IntegrityError:  # a concurrent invitation of the same address committed first
        raise Conflict(f"{clean} is being invited to {tenant.slug!r} by someone else right now; try again.") from None
    audit_record(
        action="invitation.create",
        actor=actor or SYSTEM_ACTOR,
        tenant=tenant,
        target=clean,
        detail={"invitation_id": invitation.pk, "role": role, "replaced": replaced},
    )
    transaction.on_commit(lambda: _mail(invitation, token))
    return IssuedInvitation(invitation=invitation, token=token)


def invitation_link(token: str) -> str:
    """The dashboard page where the invitee accepts or declines (the emailed link; the inviter's page shows it once)."""
    return f"{settings.EXTERNAL_URL}/invitations/{token}/"


def _mail(invitation: Invitation, token: str) -> None:
    """Email the invitation's link (after the commit). A mail server that fails loses no invitation: the
    inviter got the token in the response and can pass it on or invite again; the failure is logged."""
    tenant = invitation.tenant
    link = invitation_link(token)
    try:
        _send(invitation, tenant, link, token)
    except (smtplib.SMTPException, OSError) as exc:
        log.error("invitation %s: the mail to its address could not be sent (%s)", invitation.pk, exc)


def _send(invitation: Invitation, tenant: Tenant, link: str, token: str) -> None:
    send_mail(
        subject=f"You are invited to {tenant.name or tenant.slug} on Wharf",
        message=(
            f"You are invited to join {tenant.slug!r} as {invitation.role}.\n\n"
            f"Accept it while signed in as {invitation.email}: {link}\n"
            f'(or POST {{"token": "{token}"}} to {settings.EXTERNAL_URL}/api/v1/invitations/accept).\n\n'
            f"The invitation expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def invitation_revoke(*, tenant: Tenant, invitation_id: int, actor: str | None = None) -> None:
    """Revoke an open invitation of `tenant` (its token stops working); revoking twice is harmless; NotFound for others; audited."""
    invitation = Invitation.objects.filter(pk=invitation_id, tenant=tenant).first()
    if invitation is None:
        raise NotFound(f"Tenant {tenant.slug!r} has no invitation {invitation_id}.")
    now = timezone.now()
    if Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    ):
        audit_record(
            action="invitation.revoke",
            actor=actor or SYSTEM_ACTOR,
            tenant=tenant,
            target=invitation.email,
            detail={"invitation_id": invitation.pk},
        )


def _addressed_to(invitation: Invitation | None, user: User) -> bool:
    email = (user.email or "").strip().lower()
    return invitation is not None and bool(email) and user.is_active and invitation.email == email


def invitation_pk_for_token(token: str | None) -> int | None:
    """The id of the invitation whose emailed token this is (any status), or None; only the hash is compared."""
    if not isinstance(token, str) or not token.startswith(INVITATION_PREFIX) or len(token) > 200:
        return None
    return Invitation.objects.filter(token_hash=hash_secret(token)).values_list("pk", flat=True).first()


def _pending_for(*, user: User, invitation_id: int | None, token: str | None) -> Invitation:
    """The locked pending invitation addressed to `user`, by id or token: NotFound when none is theirs, Gone when it ended."""
    pk = invitation_pk_for_token(token) if token is not None else invitation_id
    invitation = invitation_lock(pk=pk) if pk is not None else None
    if invitation is None or not _addressed_to(invitation, user):
        raise NotFound("No such invitation for your email address.")
    status = invitation.status()
    if status != Invitation.Status.PENDING:
        raise Gone(f"This invitation is {status}; ask for a new one.")
    if invitation.tenant.status == Tenant.Status.DELETING:
        raise Gone("The tenant of this invitation is being deleted.")
    return invitation


@transaction.atomic
def invitation_accept(
    *, user: User, invitation_id: int | None = None, token: str | None = None, actor: str | None = None
) -> Membership:
    """Accept an invitation addressed to `user`'s email (by id or by token), once: the membership with its role; locked; audited.

    NotFound when it does not exist or is someone else's; Gone when accepted, revoked or expired;
    Conflict when the user is already a member.
    """
    invitation = _pending_for(user=user, invitation_id=invitation_id, token=token)
    tenant = invitation.tenant
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict(f"You are already a member of {tenant.slug!r}.")
    members_limit_check(tenant=tenant)
    membership = Membership.objects.create(tenant=tenant, user=user, role=invitation.role)
    now = timezone.now()
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=now, accepted_by=user, updated_at=now)
    audit_record(
        action="invitation.accept",
        actor=actor or user.username,
        tenant=tenant,
        target=user.username,
        detail={"invitation_id": invitation.pk, "role": invitation.role, "email": invitation.email},
    )
    return membership


@transaction.atomic
def invitation_decline(
    *, user: User, invitation_id: int | None = None, token: str | None = None, actor: str | None = None
) -> Invitation:
    """Decline a pending invitation addressed to `user` (by id or token): it ends as revoked, its link stops working; locked; audited.

    NotFound when it does not exist or is someone else's; Gone when it already ended.
    """
    invitation = _pending_for(user=user, invitation_id=invitation_id, token=token)
    now = timezone.now()
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=now, updated_at=now)
    audit_record(
        action="invitation.decline",
        actor=actor or user.username,
        tenant=invitation.tenant,
        target=user.username,
        detail={"invitation_id": invitation.pk, "role": invitation.role, "email": invitation.email},
    )
    return invitation
