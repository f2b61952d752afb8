from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Membership, PersonalAccessToken, Tenant, User

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
    list_display = ("name", "user", "prefix", "scopes", "expires_at", "last_used_at", "revoked_at")
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "token_hash", "last_used_at")
