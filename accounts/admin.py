from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from accounts.models import AuditEvent, Membership, PersonalAccessToken, RefreshToken, RobotAccount, Tenant, User

admin.site.register(User, UserAdmin)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "status", "storage_quota_bytes", "created_at")
    search_fields = ("slug", "name")
    list_filter = ("status",)
    inlines = [MembershipInline]


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scopes", "repositories", "expires_at", "last_used_at", "revoked_at")
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "token_hash", "last_used_at")


@admin.register(RobotAccount)
class RobotAccountAdmin(admin.ModelAdmin):
    """Robots are created with `manage.py create_robot` (the secret is shown once); here they can be inspected and revoked."""

    list_display = ("name", "tenant", "scopes", "repositories", "expires_at", "last_used_at", "revoked_at")
    search_fields = ("name", "tenant__slug")
    list_filter = ("tenant",)
    readonly_fields = ("tenant", "name", "secret_hash", "last_used_at", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ("pk", "user", "robot", "service", "created_at", "expires_at", "last_used_at", "revoked_at")
    search_fields = ("user__username", "robot__name", "service")
    readonly_fields = (
        "user",
        "robot",
        "access_token",
        "user_auth_hash",
        "secret_hash",
        "service",
        "expires_at",
        "last_used_at",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log is append-only: nobody adds, edits or deletes events here."""

    list_display = ("created_at", "tenant", "actor", "action", "target", "ip", "success")
    list_filter = ("action", "success")
    search_fields = ("actor", "target", "tenant__slug")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
