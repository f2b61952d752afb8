"""Users, tenants, memberships, credentials (personal access tokens, robots, refresh tokens) and the audit log."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from gateway.core.models import TimeStampedModel


class User(AbstractUser):
    """Our user model from the start (AUTH_USER_MODEL); usernames are global."""

    # Bumped by accounts.services.user_sessions_revoke: registry bearer tokens carry the epoch
    # they were issued in, and one from an older epoch is refused (docs/decisions/0009).
    session_epoch = models.PositiveIntegerField(default=0)


class Tenant(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        # Being deleted by a background job (docs/decisions/0022): gone for /v2/ and for API writes.
        DELETING = "deleting"

    slug = models.CharField(max_length=63, unique=True)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The plan's limits, written by billing through accounts.services.tenant_limits_set (staff set the
    # storage quota through accounts.tenant_admin too); the registry and accounts only read them. null = unlimited.
    storage_quota_bytes = models.BigIntegerField(null=True, blank=True)
    private_repositories_limit = models.PositiveIntegerField(null=True, blank=True)
    members_limit = models.PositiveIntegerField(null=True, blank=True)
    robots_limit = models.PositiveIntegerField(null=True, blank=True)
    # Manifest GETs per sliding window of accounts.limits.PULL_WINDOW_SECONDS (6 hours, as Docker Hub counts).
    pulls_per_window_authenticated = models.PositiveIntegerField(null=True, blank=True)
    pulls_per_window_anonymous = models.PositiveIntegerField(null=True, blank=True)
    egress_bytes_per_month_limit = models.BigIntegerField(null=True, blank=True)
    # Pulls of blob content: 307 to a presigned URL, or streamed through the gateway.
    redirect_blob_downloads = models.BooleanField(default=False)
    # Set by accounts.tenant_admin.tenant_suspend (platform operators): pulls go on, pushes and deletes are refused.
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.slug


class Membership(TimeStampedModel):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        WRITER = "writer"
        READER = "reader"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_tenant_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class TokenScope(models.TextChoices):
    """What a credential may do: the registry's actions, then the admin API's (docs/decisions/0019)."""

    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    API_READ = "api:read"
    API_WRITE = "api:write"
    ADMIN = "admin"  # platform operators' endpoints; only a staff user's token may carry it


class PersonalAccessTokenQuerySet(models.QuerySet):
    def active(self, *, now: datetime | None = None) -> PersonalAccessTokenQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class PersonalAccessToken(TimeStampedModel):
    """A user's secret for registry clients. Only the SHA-256 of the secret is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    # First characters of the secret, shown in lists so people can tell tokens apart.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # fnmatch-style patterns of repository names the token may reach; empty = no restriction.
    repositories = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, *, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class RobotAccountQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> RobotAccountQuerySet:
        return self.filter(tenant=tenant)

    def active(self, *, now: datetime | None = None) -> RobotAccountQuerySet:
        now = now or timezone.now()
        # A suspended tenant's robots still log in: its pulls go on (the registry refuses its pushes).
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class RobotAccount(TimeStampedModel):
    """A tenant's machine credential (CI, deploys). Username `<tenant-slug>+<name>`; only the secret's SHA-256 is kept."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="robots")
    name = models.CharField(max_length=63)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # fnmatch-style patterns of repository names in the tenant; empty = every repository.
    repositories = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = RobotAccountQuerySet.as_manager()

    class Meta:
        # Revoked robots keep their row (audit, refresh tokens) and so their name.
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="robot_unique_tenant_name")]

    def __str__(self) -> str:
        return self.username

    @property
    def username(self) -> str:
        return f"{self.tenant.slug}+{self.name}"

    def is_active(self, *, now: datetime | None = None) -> bool:
        """Not revoked and not expired (a suspended tenant's robots may still pull: docs/decisions/0023)."""
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class RefreshToken(TimeStampedModel):
    """A long-lived OAuth2 refresh token (`docker login`) for one service, for a user or a robot; stored hashed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="refresh_tokens")
    robot = models.ForeignKey(RobotAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="refresh_tokens")
    # Set when the login used a personal access token: the refresh token carries its scopes and dies with it.
    access_token = models.ForeignKey(
        PersonalAccessToken, on_delete=models.CASCADE, null=True, blank=True, related_name="refresh_tokens"
    )
    # Django's session auth hash of the user at issue time: a password change ends the refresh token.
    user_auth_hash = models.CharField(max_length=128, blank=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    service = models.CharField(max_length=255)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, robot__isnull=True)
                | Q(user__isnull=True, robot__isnull=False, access_token__isnull=True),
                name="refresh_token_one_principal",
            )
        ]

    def __str__(self) -> str:
        who = self.user.username if self.user_id and self.user else (self.robot.username if self.robot else "?")
        return f"refresh token for {who} ({self.service})"


class AuditEvent(models.Model):
    """One security-relevant event (login, credential or membership change, push, delete). Never updated."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events")
    actor = models.CharField(max_length=200)  # username, <tenant>+<robot>, "anonymous" or "system"
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=500, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    success = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="audit_tenant_created")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class InvitationQuerySet(models.QuerySet):
    def pending(self, *, now: datetime | None = None) -> InvitationQuerySet:
        """Neither accepted nor revoked, and not expired."""
        now = now or timezone.now()
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)

    def with_status(self, status: str, *, now: datetime | None = None) -> InvitationQuerySet:
        """Those whose `Invitation.status()` is `status` (pending, accepted, revoked or expired)."""
        now = now or timezone.now()
        open_ = Q(accepted_at__isnull=True, revoked_at__isnull=True)
        conditions = {
            "pending": open_ & Q(expires_at__gt=now),
            "accepted": Q(accepted_at__isnull=False),
            "revoked": Q(accepted_at__isnull=True, revoked_at__isnull=False),
            "expired": open_ & Q(expires_at__lte=now),
        }
        return self.filter(conditions[status])


class Invitation(TimeStampedModel):
    """An invitation to join a tenant with a role, addressed to an email; its secret token is stored hashed only."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REVOKED = "revoked"
        EXPIRED = "expired"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)  # stored lower-cased
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            # One open invitation per address and tenant: inviting again replaces it (docs/decisions/0022).
            models.UniqueConstraint(
                fields=["tenant", "email"],
                name="invitation_unique_open_tenant_email",
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
            )
        ]
        indexes = [models.Index(fields=["email", "expires_at"], name="invitation_email_idx")]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.tenant_id} ({self.role})"

    def status(self, *, now: datetime | None = None) -> str:
        now = now or timezone.now()
        if self.accepted_at is not None:
            return self.Status.ACCEPTED
        if self.revoked_at is not None:
            return self.Status.REVOKED
        return self.Status.EXPIRED if self.expires_at <= now else self.Status.PENDING
