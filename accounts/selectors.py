"""Reads for tenants, memberships, credentials and the audit log."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import datetime

from django.contrib.auth import authenticate
from django.db.models import QuerySet
from django.utils import timezone

from accounts.bearer import access_token_with_membership
from accounts.invitations import invitation_pk_for_token
from accounts.models import AuditEvent, Invitation, Membership, PersonalAccessToken, RobotAccount, Tenant, User
from accounts.principals import Principal, principal_for_access_token, principal_for_password, principal_for_robot
from accounts.secrets import ROBOT_PREFIX, TOKEN_PREFIX, hash_secret
from accounts.services import access_token_touch, robot_touch

__all__ = [
    "Principal",
    "access_token_find",
    "access_token_list",
    "audit_event_list",
    "audit_list",
    "bearer_secret_check",
    "credentials_check",
    "invitation_get_for_user",
    "invitation_list",
    "invitation_list_for_user",
    "is_token_secret",
    "membership_list",
    "membership_role_get",
    "password_check",
    "robot_find",
    "robot_list",
    "tenant_get",
    "tenant_get_any_status",
    "tenant_get_served",
    "tenant_get_for_user",
    "tenant_list_for_robot",
    "tenant_list_for_user",
    "tenant_membership_get",
    "tenant_membership_list",
    "tenant_robot_list",
    "token_subject_epoch",
    "token_credentials_check",
    "username_acceptable",
]

MAX_SECRET_LENGTH = 200  # ours are ~53 characters; anything far longer is not one of them


def tenant_get(*, slug: str) -> Tenant | None:
    """The active tenant with this slug, or None."""
    return Tenant.objects.filter(slug=slug, status=Tenant.Status.ACTIVE).first()


def tenant_get_any_status(*, slug: str) -> Tenant | None:
    """The tenant with this slug whatever its status (active, suspended, deleting), or None."""
    return Tenant.objects.filter(slug=slug).first()


def tenant_get_served(*, slug: str) -> Tenant | None:
    """The tenant the registry serves under this slug: active or suspended (pulls go on), never one being deleted; or None."""
    return Tenant.objects.filter(slug=slug).exclude(status=Tenant.Status.DELETING).first()


def membership_role_get(*, tenant: Tenant, user: User) -> str | None:
    """The user's role in the tenant, or None when not a member."""
    if not user.is_active:
        return None
    return Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()


def tenant_list_for_user(*, user: User) -> QuerySet[Tenant]:
    """The tenants the user is a member of (any status), by slug; none for an inactive user."""
    if not user.is_active:
        return Tenant.objects.none()
    return Tenant.objects.filter(memberships__user=user).order_by("slug")


def tenant_list_for_robot(*, robot: RobotAccount) -> QuerySet[Tenant]:
    """A robot's own tenant, as a list of one."""
    return Tenant.objects.filter(pk=robot.tenant_id).order_by("slug")


def tenant_get_for_user(*, slug: str, user: User) -> tuple[Tenant, str] | None:
    """The tenant with this slug (any status) and the user's role in it, or None when missing or not a member."""
    if not user.is_active:
        return None
    membership = Membership.objects.select_related("tenant").filter(tenant__slug=slug, user=user).first()
    return (membership.tenant, membership.role) if membership is not None else None


def membership_list(*, user: User) -> QuerySet[Membership]:
    """The user's memberships with their tenants, by tenant slug."""
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__slug")


def access_token_list(*, user: User) -> QuerySet[PersonalAccessToken]:
    """The user's personal access tokens, newest first (revoked and expired ones included)."""
    return PersonalAccessToken.objects.filter(user=user).order_by("-created_at", "-pk")


def access_token_find(*, secret: str) -> PersonalAccessToken | None:
    """The active token with this secret (looked up by hash, compared in constant time)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = hash_secret(secret)
    token = PersonalAccessToken.objects.select_related("user").active(now=timezone.now()).filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.user.is_active:
        return None
    return token


def robot_list(*, tenant: Tenant) -> list[RobotAccount]:
    """The tenant's robot accounts, by name (revoked and expired ones included)."""
    return list(RobotAccount.objects.for_tenant(tenant).select_related("tenant").order_by("name"))


def tenant_robot_list(*, tenant: Tenant) -> QuerySet[RobotAccount]:
    """The tenant's robot accounts as a queryset (revoked and expired ones included), by name."""
    return RobotAccount.objects.for_tenant(tenant).select_related("tenant").order_by("name")


def tenant_membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    """The tenant's memberships with their users, oldest first."""
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("pk")


def robot_find(*, secret: str) -> RobotAccount | None:
    """The active robot with this secret (looked up by hash, compared in constant time), tenant active."""
    if not secret.startswith(ROBOT_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = hash_secret(secret)
    robot = RobotAccount.objects.select_related("tenant").active(now=timezone.now()).filter(secret_hash=digest).first()
    if robot is None or not hmac.compare_digest(robot.secret_hash, digest):
        return None
    return robot


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def username_acceptable(username: str) -> bool:
    """Whether a name could be an account at all (1–150 characters, no NUL); others are refused unchecked."""
    return isinstance(username, str) and 0 < len(username) <= 150 and "\x00" not in username


def is_token_secret(secret: str) -> bool:
    """Whether a secret has the shape of a personal access token or robot secret (so it is never tried as a password)."""
    return isinstance(secret, str) and secret.startswith((TOKEN_PREFIX, ROBOT_PREFIX))


def token_credentials_check(*, username: str, secret: str) -> Principal | None:
    """The principal a personal access token or robot secret names, or None; records last use.

    A personal access token's owner must be `username`; a robot's `username` must be
    `<tenant-slug>+<robot-name>`.
    """
    if not username_acceptable(username) or not secret:
        return None
    token = access_token_find(secret=secret)
    if token is not None:
        if not _same(token.user.username, username):
            return None
        access_token_touch(token=token)
        return principal_for_access_token(token)
    robot = robot_find(secret=secret)
    if robot is not None:
        if not _same(robot.username, username):
            return None
        robot_touch(robot=robot)
        return principal_for_robot(robot)
    return None


def bearer_secret_check(*, secret: str, tenant_slug: str | None = None) -> Principal | None:
    """The principal a bare personal access token or robot secret names (`Authorization: Bearer`), or None; records last use.

    The same lookups as token_credentials_check, without a username: the 256-bit secret alone identifies its owner.
    With `tenant_slug`, a personal access token's user's membership there is read in the same query
    (`Principal.membership`, docs/decisions/0037).
    """
    if not is_token_secret(secret):
        return None
    if tenant_slug is not None and secret.startswith(TOKEN_PREFIX) and len(secret) <= MAX_SECRET_LENGTH:
        digest = hash_secret(secret)
        found = access_token_with_membership(token_hash=digest, tenant_slug=tenant_slug, now=timezone.now())
        if found is None or not hmac.compare_digest(found[0].token_hash, digest) or not found[0].user.is_active:
            return None
        access_token_touch(token=found[0])
        return replace(principal_for_access_token(found[0]), membership=(tenant_slug, found[1]))
    token = access_token_find(secret=secret)
    if token is not None:
        access_token_touch(token=token)
        return principal_for_access_token(token)
    robot = robot_find(secret=secret)
    if robot is not None:
        robot_touch(robot=robot)
        return principal_for_robot(robot)
    return None


def credentials_check(*, username: str, secret: str) -> Principal | None:
    """The principal these Basic credentials name, or None for any failure alike; records last use.

    A secret shaped like a personal access token or robot secret is checked as one only
    (token_credentials_check), anything else as the user's password (password_check).
    Unthrottled and unaudited: requests go through accounts.logins.credentials_authenticate,
    which throttles and audits around the same two checks.
    """
    if is_token_secret(secret):
        return token_credentials_check(username=username, secret=secret)
    return password_check(username=username, password=secret)


def password_check(*, username: str, password: str) -> Principal | None:
    """The active user with this username and password (Django's backends), or None."""
    if not username_acceptable(username) or not password:
        return None
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        return None
    return principal_for_password(user)


def token_subject_epoch(*, subject: str, robot: bool, access_token_id: int | None = None) -> int | None:
    """The session epoch a bearer token's subject must carry to be honoured, or None when its credential is gone.

    A user: active, and (when a personal access token logged in) that token still active and
    theirs; the epoch is `User.session_epoch`. A robot (`<tenant>+<name>`): active; epoch 0.
    """
    if robot:
        slug, _, name = subject.partition("+")
        found = RobotAccount.objects.active(now=timezone.now()).filter(tenant__slug=slug, name=name).exists()
        return 0 if found else None
    epoch = User.objects.filter(username=subject, is_active=True).values_list("session_epoch", flat=True).first()
    if epoch is None or access_token_id is None:
        return epoch
    active = PersonalAccessToken.objects.active(now=timezone.now()).filter(pk=access_token_id, user__username=subject).exists()
    return epoch if active else None


def audit_list(
    *, tenant: Tenant | None, since: datetime | None = None, action: str | None = None, limit: int = 100
) -> list[AuditEvent]:
    """A tenant's audit events (tenant None: events of no tenant, e.g. logins), newest first, at most `limit` (≤ 1000)."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be between 1 and 1000, got {limit}.")
    events = AuditEvent.objects.filter(tenant__isnull=True) if tenant is None else AuditEvent.objects.filter(tenant=tenant)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if action:
        events = events.filter(action=action)
    return list(events.order_by("-created_at", "-pk")[:limit])


def audit_event_list(*, tenant: Tenant) -> QuerySet[AuditEvent]:
    """The tenant's audit events as a queryset (for filtering and paging), newest first: `created_at`, then `pk`."""
    return AuditEvent.objects.filter(tenant=tenant).order_by("-created_at", "-pk")


def tenant_membership_get(*, tenant: Tenant, username: str) -> Membership | None:
    """The tenant's membership of `username` with its user, or None."""
    return tenant_membership_list(tenant=tenant).filter(user__username=username).first()


def invitation_list(*, tenant: Tenant) -> QuerySet[Invitation]:
    """The tenant's invitations (every status) with who sent them, newest first."""
    return Invitation.objects.filter(tenant=tenant).select_related("tenant", "invited_by").order_by("-pk")


def invitation_list_for_user(*, user: User) -> QuerySet[Invitation]:
    """The pending invitations addressed to the user's email (none without one), to tenants not being deleted, newest first."""
    email = (user.email or "").strip().lower()
    if not email or not user.is_active:
        return Invitation.objects.none()
    pending = Invitation.objects.pending().filter(email=email).exclude(tenant__status=Tenant.Status.DELETING)
    return pending.select_related("tenant", "invited_by").order_by("-pk")


def invitation_get_for_user(*, user: User, token: str) -> Invitation | None:
    """The invitation of this emailed token (any status) with its tenant and inviter, when it is addressed to the user's email; else None."""
    email = (user.email or "").strip().lower()
    pk = invitation_pk_for_token(token)
    if pk is None or not email or not user.is_active:
        return None
    return Invitation.objects.filter(pk=pk, email=email).select_related("tenant", "invited_by").first()
