"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path, re_path

from gateway.dashboard.views import home, orgs, repositories, repository_delete, start

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
]
