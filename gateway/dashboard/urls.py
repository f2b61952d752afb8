"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import home, security

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # accounts (the signed-in user's security pages; allauth's own pages are under /accounts/ too)
    path("accounts/sessions/", security.sessions, name="sessions"),
]
