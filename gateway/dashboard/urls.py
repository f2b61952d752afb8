"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import audit, home, usage
from gateway.dashboard.views import settings as org_settings

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # usage, audit log, organisation settings
    path("orgs/<slug:slug>/usage/", usage.usage, name="usage"),
    path("orgs/<slug:slug>/audit/", audit.audit, name="audit"),
    path("orgs/<slug:slug>/audit/export.csv", audit.audit_export, name="audit_export"),
    path("orgs/<slug:slug>/settings/", org_settings.settings, name="settings"),
    path("orgs/<slug:slug>/settings/delete/", org_settings.settings_delete, name="settings_delete"),
]
