"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import home, policies, webhooks

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
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
]
