"""Writes for tenants, users, memberships and credentials (tokens, robots); refresh tokens and sessions are accounts.sessions,
the audit log is accounts.audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

# Also re-exported: registry, replication and accounts.logins import the audit write from here.
from accounts.audit import SYSTEM_ACTOR, audit_record
from accounts.limits import TenantLimits, limit_check
from accounts.locks import memberships_lock, robot_lock
from accounts.models import Invitation, Membership, PersonalAccessToken, RefreshToken, RobotAccount, Tenant, TokenScope, User
from accounts.secrets import ROBOT_PREFIX, TOKEN_PREFIX, TOUCH_INTERVAL_S, hash_secret, new_secret, touch
from accounts.sessions import refresh_tokens_revoke
from accounts.validators import validate_repository_patterns, validate_robot_name, validate_tenant_slug
from gateway.core.errors import ApplicationError, Conflict, NotFound, ValidationError
from gateway.core.models import changes_save

ALL_SCOPES = tuple(TokenScope.values)
# What a token gets when nobody says: the registry's actions, never the admin API's.
REGISTRY_SCOPES = (TokenScope.PULL.value, TokenScope.PUSH.value, TokenScope.DELETE.value)


def _clean_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(scopes, str) or not scopes or not all(s in ALL_SCOPES for s in scopes):
        bad = [s for s in scopes if s not in ALL_SCOPES] if not isinstance(scopes, str) else [scopes]
        raise ValidationError(f"Unknown or missing scopes {bad or list(scopes)!r}; use some of {', '.join(ALL_SCOPES)}.")
    return sorted(set(scopes), key=ALL_SCOPES.index)


def _refuse_admin(scopes: list[str], *, allowed: bool) -> None:
    if TokenScope.ADMIN in scopes and not allowed:
        raise ValidationError("Only a staff user's token may carry the admin scope; leave it out of the scopes.")


def _expires_at(expires_in_days: int | None, *, what: str) -> datetime | None:
    if expires_in_days is None:
        return None
    if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= 3650:
        raise ValidationError(f"A {what} must expire in 1 to 3650 days.")
    return timezone.now() + timedelta(days=expires_in_days)


# --- Users, tenants, memberships --------------------------------------------------------------


def user_get_or_create(*, username: str, email: str = "", password: str | None = None) -> tuple[User, bool]:
    """The user with this username, created (with the password, if given) when missing."""
    username = username.strip()
    if not username or len(username) > 150:
        raise ValidationError("A username of 1 to 150 characters is required.")
    if not all(c.isalnum() or c in "@.+-_" for c in username):
        raise ValidationError(f"Username {username!r} may hold only letters, digits and @ . + - _")
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if created:
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save(update_fields=["password"])
    return user, created


@transaction.atomic
def tenant_create(*, slug: str, owner: User, name: str = "", actor: str | None = None) -> Tenant:
    """Create a tenant with `owner` as its owner. Refuses bad, reserved or taken slugs; audited when an `actor` is named."""
    validate_tenant_slug(slug)
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise Conflict(f"Tenant {slug!r} already exists.") from None
    Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    if actor is not None:
        audit_record(action="tenant.create", actor=actor, tenant=tenant, target=slug, detail={"owner": owner.username})
    return tenant


def members_limit_check(*, tenant: Tenant, pending_invitations: bool = False, except_email: str = "") -> None:
    """QuotaExceeded when the tenant's members (and, when asked, its pending invitations but one to `except_email`) fill
    its plan's members limit; locks the tenant's row for the caller's transaction when there is a limit."""

    def count() -> int:
        members = Membership.objects.filter(tenant=tenant).count()
        if not pending_invitations:
            return members
        return members + Invitation.objects.filter(tenant=tenant).pending().exclude(email=except_email).count()

    limit_check(tenant=tenant, field="members_limit", what="members", count=count)


@transaction.atomic
def membership_set(*, tenant: Tenant, user: User, role: str, actor: str | None = None) -> Membership:
    """Give `user` `role` in `tenant` (create or change); idempotent; audited when something changed."""
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}.")
    previous = Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()
    if previous is None:
        members_limit_check(tenant=tenant)
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    if previous != role:
        audit_record(
            action="membership.set",
            actor=actor or SYSTEM_ACTOR,
            tenant=tenant,
            target=user.username,
            detail={"role": role, "previous": previous},
        )
    return membership


def _member_for_change(*, tenant: Tenant, username: str, by_role: str) -> tuple[Membership, int]:
    """The locked membership of `username` and the tenant's owner count; refuses what `by_role` may not do."""
    memberships = memberships_lock(tenant=tenant)
    membership = next((m for m in memberships if m.user.username == username), None)
    if membership is None:
        raise NotFound(f"{username!r} is not a member of {tenant.slug!r}.")
    if membership.role == Membership.Role.OWNER and by_role != Membership.Role.OWNER:
        raise ApplicationError("Only an owner may change or remove an owner.")
    return membership, sum(m.role == Membership.Role.OWNER for m in memberships)


@transaction.atomic
def membership_role_set(*, tenant: Tenant, username: str, role: str, by_role: str, actor: str | None = None) -> Membership:
    """Change an existing member's role; only owners grant or take away owner; the last owner stays one; locked; audited."""
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}.")
    if role == Membership.Role.OWNER and by_role != Membership.Role.OWNER:
        raise ApplicationError("Only an owner may make someone an owner.")
    membership, owners = _member_for_change(tenant=tenant, username=username, by_role=by_role)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER and owners == 1:
        raise Conflict(f"{username!r} is the last owner of {tenant.slug!r}; make someone else an owner first.")
    previous = membership.role
    if previous != role:
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
        audit_record(
            action="membership.set",
            actor=actor or SYSTEM_ACTOR,
            tenant=tenant,
            target=username,
            detail={"role": role, "previous": previous},
        )
    return membership


@transaction.atomic
def membership_remove(*, tenant: Tenant, username: str, by_role: str, actor: str | None = None) -> None:
    """Remove a member; only owners remove owners; the last owner can never be removed; locked; audited."""
    membership, owners = _member_for_change(tenant=tenant, username=username, by_role=by_role)
    if membership.role == Membership.Role.OWNER and owners == 1:
        raise Conflict(f"{username!r} is the last owner of {tenant.slug!r}; make someone else an owner first.")
    membership.delete()
    audit_record(
        action="membership.remove", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=username, detail={"role": membership.role}
    )


def tenant_limits_set(*, tenant: Tenant, limits: TenantLimits) -> None:
    """Write every plan limit of the tenant at once (billing calls this on a plan change); no value may be negative."""
    negative = sorted(name for name, value in limits.as_fields().items() if value is not None and value < 0)
    if negative:
        raise ValidationError(f"Limits cannot be negative: {', '.join(negative)}.")
    Tenant.objects.filter(pk=tenant.pk).update(**limits.as_fields(), updated_at=timezone.now())


def tenant_quota_set(*, tenant: Tenant, storage_quota_bytes: int | None) -> None:
    """Set the storage quota (billing calls this; the registry reads it at upload finish)."""
    if storage_quota_bytes is not None and storage_quota_bytes < 0:
        raise ValidationError("A storage quota cannot be negative.")
    Tenant.objects.filter(pk=tenant.pk).update(storage_quota_bytes=storage_quota_bytes, updated_at=timezone.now())


# --- Personal access tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: PersonalAccessToken
    secret: str  # shown once, never stored


@transaction.atomic
def access_token_issue(
    *,
    user: User,
    name: str,
    scopes: list[str] | tuple[str, ...] = REGISTRY_SCOPES,
    repositories: list[str] | tuple[str, ...] = (),
    expires_in_days: int | None = None,
    actor: str | None = None,
) -> IssuedToken:
    """Create a personal access token; the secret is returned once and only its hash is kept; audited."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError("A token name of 1 to 100 characters is required.")
    clean_scopes = _clean_scopes(scopes)
    _refuse_admin(clean_scopes, allowed=user.is_staff)
    patterns = validate_repository_patterns(repositories)
    expires_at = _expires_at(expires_in_days, what="token")
    secret = new_secret(TOKEN_PREFIX)
    token = PersonalAccessToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_secret(secret),
        scopes=clean_scopes,
        repositories=patterns,
        expires_at=expires_at,
    )
    audit_record(
        action="token.issue",
        actor=actor or user.username,
        target=f"{user.username}/{name} ({token.prefix}…)",
        detail={"token_id": token.pk, "scopes": clean_scopes, "repositories": patterns, "expires_at": expires_at},
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def access_token_revoke(*, user: User, token_id: int, actor: str | None = None) -> None:
    """Revoke one of the user's tokens and the refresh tokens issued through it; revoking twice is harmless."""
    now = timezone.now()
    updated = PersonalAccessToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    if not updated:
        if not PersonalAccessToken.objects.filter(pk=token_id, user=user).exists():
            raise NotFound("No such token.")
        return
    RefreshToken.objects.filter(access_token_id=token_id, revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
    audit_record(action="token.revoke", actor=actor or user.username, target=user.username, detail={"token_id": token_id})


def access_token_touch(*, token: PersonalAccessToken, min_interval_s: int = TOUCH_INTERVAL_S) -> None:
    """Record last use, at most once a minute per token (a write per pull would be wasteful)."""
    touch(token, min_interval_s=min_interval_s)


# --- Robot accounts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedRobot:
    robot: RobotAccount
    secret: str  # shown once, never stored
    username: str  # "<tenant-slug>+<robot-name>"


@transaction.atomic
def robot_create(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str] | tuple[str, ...],
    repositories: list[str] | tuple[str, ...] = (),
    expires_in_days: int | None = None,
    actor: str | None = None,
) -> IssuedRobot:
    """Create a robot account in `tenant`; its secret is returned once, only its hash is kept; audited."""
    validate_robot_name(name)
    clean_scopes = _clean_scopes(scopes)
    _refuse_admin(clean_scopes, allowed=False)
    patterns = validate_repository_patterns(repositories)
    expires_at = _expires_at(expires_in_days, what="robot account")
    # Revoked robots do not count: revoking one makes room for another.
    limit_check(
        tenant=tenant, field="robots_limit", what="robots", count=lambda: RobotAccount.objects.for_tenant(tenant).active().count()
    )
    secret = new_secret(ROBOT_PREFIX)
    try:
        with transaction.atomic():
            robot = RobotAccount.objects.create(
                tenant=tenant,
                name=name,
                secret_hash=hash_secret(secret),
                scopes=clean_scopes,
                repositories=patterns,
                expires_at=expires_at,
            )
    except IntegrityError:
        raise Conflict(f"Tenant {tenant.slug!r} already has a robot named {name!r} (revoked robots keep their name).") from None
    robot.tenant = tenant
    audit_record(
        action="robot.create",
        actor=actor or SYSTEM_ACTOR,
        tenant=tenant,
        target=robot.username,
        detail={"scopes": clean_scopes, "repositories": patterns, "expires_at": expires_at},
    )
    return IssuedRobot(robot=robot, secret=secret, username=robot.username)


@transaction.atomic
def robot_revoke(*, tenant: Tenant, name: str, actor: str | None = None) -> None:
    """Revoke a robot and its refresh tokens; revoking twice is harmless; NotFound for an unknown name."""
    robot = RobotAccount.objects.for_tenant(tenant).filter(name=name).first()
    if robot is None:
        raise NotFound(f"Tenant {tenant.slug!r} has no robot named {name!r}.")
    now = timezone.now()
    if RobotAccount.objects.filter(pk=robot.pk, revoked_at__isnull=True).update(revoked_at=now, updated_at=now):
        refresh_tokens_revoke(robot=robot)
        audit_record(action="robot.revoke", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=f"{tenant.slug}+{name}")


_UNSET: object = object()


def _live_robot(*, tenant: Tenant, name: str) -> RobotAccount:
    robot = robot_lock(tenant=tenant, name=name)
    if robot is None:
        raise NotFound(f"Tenant {tenant.slug!r} has no robot named {name!r}.")
    if robot.revoked_at is not None:
        raise Conflict(f"Robot {name!r} is revoked; create a new one.")
    robot.tenant = tenant
    return robot


@transaction.atomic
def robot_update(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str] | tuple[str, ...] | None = None,
    repositories: list[str] | tuple[str, ...] | None = None,
    expires_in_days: int | None | object = _UNSET,
    actor: str | None = None,
) -> RobotAccount:
    """Change a live robot's scopes, repository patterns or expiry (None/unset: unchanged; expires_in_days=None: never); locked; audited."""
    robot = _live_robot(tenant=tenant, name=name)
    changes: dict[str, object] = {}
    if scopes is not None:
        clean_scopes = _clean_scopes(scopes)
        _refuse_admin(clean_scopes, allowed=False)
        changes["scopes"] = clean_scopes
    if repositories is not None:
        changes["repositories"] = validate_repository_patterns(repositories)
    if expires_in_days is not _UNSET:
        changes["expires_at"] = _expires_at(expires_in_days, what="robot account")  # type: ignore[arg-type]
    changes = changes_save(robot, changes)
    if changes:
        audit_record(action="robot.update", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=robot.username, detail=changes)
    return robot


@transaction.atomic
def robot_rotate(*, tenant: Tenant, name: str, actor: str | None = None) -> IssuedRobot:
    """Give a live robot a new secret (returned once); the old secret and its refresh tokens stop working; locked; audited."""
    robot = _live_robot(tenant=tenant, name=name)
    secret = new_secret(ROBOT_PREFIX)
    robot.secret_hash = hash_secret(secret)
    robot.save(update_fields=["secret_hash", "updated_at"])
    refresh_tokens_revoke(robot=robot)
    audit_record(action="robot.rotate", actor=actor or SYSTEM_ACTOR, tenant=tenant, target=robot.username)
    return IssuedRobot(robot=robot, secret=secret, username=robot.username)


def robot_touch(*, robot: RobotAccount, min_interval_s: int = TOUCH_INTERVAL_S) -> None:
    """Record the robot's last use, at most once a minute."""
    touch(robot, min_interval_s=min_interval_s)
