"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path, re_path

from gateway.dashboard.views import (
    audit,
    billing,
    billing_invoices,
    billing_payments,
    gc,
    home,
    invitations,
    manifests,
    members,
    orgs,
    policies,
    repositories,
    repository_delete,
    robots,
    security,
    staff,
    start,
    tokens,
    usage,
    webhooks,
)
from gateway.dashboard.views import settings as org_settings

app_name = "dashboard"

# A repository name by the distribution grammar (gateway/registry/names.py): never a `-` segment nor a `:`,
# so `…/<name>/-/…` splits unambiguously and `…/<name>/manifests/<digest>/` (dashboard:manifest) is not a name.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO = rf"^orgs/(?P<slug>[-a-zA-Z0-9_]+)/repositories/(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    # repositories: create organisation, getting started, repositories, repository (before orgs/<slug>/: "new" is reserved)
    path("orgs/new/", orgs.org_create, name="org_create"),
    path("orgs/new/check-slug", orgs.check_slug, name="org_check_slug"),
    path("orgs/<slug:slug>/start/", start.start, name="start"),
    path("orgs/<slug:slug>/start/first-push/", start.first_push, name="start_first_push"),
    path("orgs/<slug:slug>/repositories/", repositories.repositories, name="repositories"),
    re_path(rf"{_REPO}/$", repositories.repository, name="repository"),
    re_path(rf"{_REPO}/-/settings/$", repositories.repository_settings, name="repository_settings"),
    re_path(rf"{_REPO}/-/delete/$", repository_delete.repository_delete, name="repository_delete"),
    re_path(
        rf"{_REPO}/-/tags/(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})/delete/$", repository_delete.tag_delete, name="tag_delete"
    ),
    re_path(
        rf"{_REPO}/-/manifests/(?P<digest>[a-z0-9+._-]+:[a-zA-Z0-9=_-]+)/delete/$",
        repository_delete.manifest_delete_view,
        name="manifest_delete",
    ),
    # end repositories
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # staff (the console for platform operators; access.staff_view)
    path("staff/", staff.console, name="staff"),
    path("staff/queues/", staff.queues, name="staff_queues"),
    path("staff/tenants/", staff.tenant_list, name="staff_tenants"),
    path("staff/tenants/<slug:slug>/", staff.tenant_detail, name="staff_tenant"),
    path("staff/tenants/<slug:slug>/suspend/", staff.tenant_suspend_view, name="staff_tenant_suspend"),
    path("staff/tenants/<slug:slug>/reactivate/", staff.tenant_reactivate_view, name="staff_tenant_reactivate"),
    path("staff/tenants/<slug:slug>/quota/", staff.tenant_quota_view, name="staff_tenant_quota"),
    path("staff/jobs/", staff.job_list, name="staff_jobs"),
    path("staff/jobs/<int:job_id>/", staff.job_detail, name="staff_job"),
    # members: members, invitations (both sides), robot accounts, personal access tokens
    path("orgs/<slug:slug>/members/", members.members, name="members"),
    path("orgs/<slug:slug>/members/invite/", members.invite, name="member_invite"),
    path("orgs/<slug:slug>/members/<str:username>/role/", members.member_role, name="member_role"),
    path("orgs/<slug:slug>/members/<str:username>/remove/", members.member_remove, name="member_remove"),
    path(
        "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("invitations/<int:invitation_id>/respond/", invitations.invitation_respond, name="invitation_respond"),
    path("invitations/<str:token>/", invitations.invitation, name="invitation"),
    path("orgs/<slug:slug>/robots/", robots.robots, name="robots"),
    path("orgs/<slug:slug>/robots/<str:name>/", robots.robot_edit, name="robot_edit"),
    path("orgs/<slug:slug>/robots/<str:name>/rotate/", robots.robot_rotate_view, name="robot_rotate"),
    path("orgs/<slug:slug>/robots/<str:name>/revoke/", robots.robot_revoke_view, name="robot_revoke"),
    path("settings/tokens/", tokens.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    # usage, audit log, organisation settings
    path("orgs/<slug:slug>/usage/", usage.usage, name="usage"),
    path("orgs/<slug:slug>/audit/", audit.audit, name="audit"),
    path("orgs/<slug:slug>/audit/export.csv", audit.audit_export, name="audit_export"),
    path("orgs/<slug:slug>/settings/", org_settings.settings, name="settings"),
    path("orgs/<slug:slug>/settings/delete/", org_settings.settings_delete, name="settings_delete"),
    # webhooks and policies (retention, immutable-tag rules)
    path("orgs/<slug:slug>/webhooks/", webhooks.webhooks, name="webhooks"),
    path("orgs/<slug:slug>/webhooks/new/", webhooks.webhook_new, name="webhook_new"),
    path("orgs/<slug:slug>/webhooks/<int:webhook_id>/", webhooks.webhook, name="webhook"),
    path("orgs/<slug:slug>/webhooks/<int:webhook_id>/delete/", webhooks.webhook_delete, name="webhook_delete"),
    path("orgs/<slug:slug>/webhooks/<int:webhook_id>/test/", webhooks.webhook_test, name="webhook_test"),
    path("orgs/<slug:slug>/webhooks/<int:webhook_id>/deliveries/", webhooks.webhook_deliveries, name="webhook_deliveries"),
    path(
        "orgs/<slug:slug>/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver/",
        webhooks.webhook_redeliver,
        name="webhook_redeliver",
    ),
    path("orgs/<slug:slug>/policies/", policies.policies, name="policies"),
    path("orgs/<slug:slug>/policies/plan/", policies.plan, name="policies_plan"),
    path("orgs/<slug:slug>/policies/retention/new/", policies.retention_new, name="retention_new"),
    path("orgs/<slug:slug>/policies/retention/<int:policy_id>/", policies.retention_edit, name="retention_edit"),
    path("orgs/<slug:slug>/policies/retention/<int:policy_id>/delete/", policies.retention_delete, name="retention_delete"),
    path("orgs/<slug:slug>/policies/immutable/new/", policies.rule_new, name="rule_new"),
    path("orgs/<slug:slug>/policies/immutable/<int:rule_id>/", policies.rule_edit, name="rule_edit"),
    path("orgs/<slug:slug>/policies/immutable/<int:rule_id>/delete/", policies.rule_delete, name="rule_delete"),
    # accounts (the signed-in user's security pages; allauth's own pages are under /accounts/ too)
    path("accounts/sessions/", security.sessions, name="sessions"),
    # manifests and gc (before the repository page: its <path:name> would swallow /manifests/<digest>/)
    path("orgs/<slug:slug>/repositories/<path:name>/manifests/<str:digest>/", manifests.manifest, name="manifest"),
    path("orgs/<slug:slug>/gc/", gc.gc, name="gc"),
    path("orgs/<slug:slug>/gc/jobs/<int:job_id>/", gc.gc_job, name="gc_job"),
    # billing (docs/decisions/0046): the page accounts.limits.billing_url links, and the plan change's confirmation
    path("orgs/<slug:slug>/billing/", billing.billing, name="billing"),
    path("orgs/<slug:slug>/billing/plans/<slug:code>/", billing.plan_change, name="billing_plan"),
    path("orgs/<slug:slug>/billing/invoices/<str:number>/", billing_invoices.invoice_page, name="billing_invoice"),
    path("orgs/<slug:slug>/billing/invoices/<str:number>.pdf", billing_invoices.invoice_pdf_download, name="billing_invoice_pdf"),
    path("orgs/<slug:slug>/billing/usage.csv", billing_invoices.usage_csv, name="billing_usage_csv"),
    path("orgs/<slug:slug>/billing/checkout/", billing_payments.checkout, name="billing_checkout"),
    path("orgs/<slug:slug>/billing/payment-methods/", billing_payments.payment_methods, name="billing_payment_methods"),
]
