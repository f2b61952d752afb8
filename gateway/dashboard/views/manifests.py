"""One manifest by digest: an index's platform tree with referrers, an image's layers (shared or unique) and config.

Reads `manifest_selectors.manifest_overview`, the same module the admin API's manifest GET
reads (`manifest_detail`). Every member sees it; nothing here changes anything.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from gateway.dashboard.access import org_view
from gateway.registry import selectors
from gateway.registry.digests import parse_digest
from gateway.registry.errors import DigestInvalid, NameInvalid
from gateway.registry.manifest_selectors import manifest_overview
from gateway.registry.names import validate_repository_name


def repository_url(slug: str, name: str) -> str:
    """The repository page (`dashboard:repository`), or its plain path while that page is not routed."""
    try:
        return reverse("dashboard:repository", args=[slug, name])
    except NoReverseMatch:
        return f"/orgs/{slug}/repositories/{name}/"


def _well_formed(name: str, digest: str) -> bool:
    """A name and digest the registry could hold (anything else, a NUL byte included, never reaches the database)."""
    try:
        validate_repository_name(name)
        parse_digest(digest)
    except (NameInvalid, DigestInvalid):
        return False
    return True


@org_view()
def manifest(request: HttpRequest, slug: str, name: str, digest: str) -> HttpResponse:
    """`/orgs/<slug>/repositories/<name>/manifests/<digest>/`: 404 for a name or digest the organisation does not have."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repository = selectors.repository_get(tenant=tenant, name=name) if _well_formed(name, digest) else None
    overview = manifest_overview(tenant=tenant, repository=repository, digest=digest) if repository is not None else None
    if overview is None:
        raise Http404("No such manifest.")
    context = {
        "nav_current": "repositories",
        "name": name,
        "m": overview,
        "repository_url": repository_url(slug, name),
        "pull_line": f"docker pull {settings.REGISTRY_DOMAIN}/{slug}/{name}@{digest}",
    }
    return render(request, "dashboard/manifests/manifest.html", context)
