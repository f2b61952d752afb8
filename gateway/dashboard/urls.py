"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import gc, home, manifests

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # manifests and gc (before the repository page: its <path:name> would swallow /manifests/<digest>/)
    path("orgs/<slug:slug>/repositories/<path:name>/manifests/<str:digest>/", manifests.manifest, name="manifest"),
    path("orgs/<slug:slug>/gc/", gc.gc, name="gc"),
    path("orgs/<slug:slug>/gc/jobs/<int:job_id>/", gc.gc_job, name="gc_job"),
]
