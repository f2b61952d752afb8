"""A tenant's repositories (search, sort, pages) and one repository (its tags, pull lines, settings).

Roles as the admin API's (gateway/api/views/repositories.py): every member reads; changing
visibility or description is for admins and owners (the roles whose registry actions include
`delete`), and so are the deletions (views/repository_delete.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Membership
from gateway.core.errors import ApplicationError
from gateway.dashboard.access import org_view
from gateway.dashboard.endpoints import registry_endpoints
from gateway.dashboard.forms.repositories import RepositorySearchForm, RepositorySettingsForm
from gateway.dashboard.rows import moment, reverse_each
from gateway.dashboard.templatetags.wharf import binarysize, short_digest
from gateway.registry import selectors
from gateway.registry.browse_selectors import manifest_image_bytes, manifest_platforms, repository_list_sized
from gateway.registry.models import Repository
from gateway.registry.services.immutability import immutable_rules_load
from gateway.registry.services.repositories import repository_update

REPOSITORIES_PER_PAGE = 25
_DIGEST_PLACEHOLDER = "sha256:" + "0" * 64
TAGS_PER_PAGE = 50


def repository_or_404(request: HttpRequest, name: str) -> Repository:
    """The URL's repository in the caller's organisation, or 404."""
    repository = selectors.repository_get(tenant=request.org.tenant, name=name)  # type: ignore[attr-defined]
    if repository is None:
        raise Http404("No such repository.")
    return repository


@org_view()
@require_GET
def repositories(request: HttpRequest, slug: str) -> HttpResponse:
    """The list: search by name (contains or prefix), sort, a page at a time; htmx asks for the table only."""
    form = RepositorySearchForm(request.GET)
    queryset = repository_list_sized(tenant=request.org.tenant)  # type: ignore[attr-defined]
    form.is_valid()  # a bad field falls back to its default; the valid ones still apply
    query = form.cleaned_data.get("q", "")
    if query:
        prefix = form.cleaned_data.get("match") == "prefix"
        queryset = queryset.filter(**{"name__startswith" if prefix else "name__icontains": query})
    page = Paginator(queryset.order_by(*form.ordering()), REPOSITORIES_PER_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "nav_current": "repositories",
        "form": form,
        "page": page,
        "rows": _repository_rows(slug, list(page.object_list)),
        "query": query,
        "params": params.urlencode(),
    }
    partial = request.htmx and not request.htmx.history_restore_request  # type: ignore[attr-defined]
    template = "dashboard/repositories/_table.html" if partial else "dashboard/repositories/list.html"
    return render(request, template, context)


def _repository_rows(slug: str, repositories: list[Repository]) -> list[dict[str, Any]]:
    """The list page's rows with every cell's text ready (gateway/dashboard/rows.py)."""
    urls = reverse_each("dashboard:repository", [slug], [r.name for r in repositories], placeholder="placeholder")
    return [
        {
            "repository": r,
            "url": url,
            "stored_text": binarysize(r.stored_bytes),  # type: ignore[attr-defined]
            "unique_text": binarysize(r.unique_bytes),  # type: ignore[attr-defined]
            "pushed": moment(r.last_pushed_at),  # type: ignore[attr-defined]
        }
        for r, url in zip(repositories, urls, strict=True)
    ]


def _tag_rows(request: HttpRequest, repository: Repository, tags: list[Any], prefix: str) -> list[dict[str, Any]]:
    """The page's rows with every cell's text ready (gateway/dashboard/rows.py: no per-cell filters or {% url %})."""
    tenant, slug = request.org.tenant, request.org.tenant.slug  # type: ignore[attr-defined]
    ids = [t.manifest_id for t in tags]
    platforms = manifest_platforms(tenant=tenant, manifest_ids=ids)
    sizes = manifest_image_bytes(tenant=tenant, manifest_ids=ids)
    rules = immutable_rules_load(tenant=tenant)
    digests = [tag.manifest.digest for tag in tags]
    fixed = [slug, repository.name]
    # Repository names and slugs are lower-case: an upper-case tag and a digest of zeros cannot occur in them.
    manifest_urls = reverse_each("dashboard:manifest", fixed, digests, placeholder=_DIGEST_PLACEHOLDER)
    tag_deletes = reverse_each("dashboard:tag_delete", fixed, [t.name for t in tags], placeholder="TAG")
    manifest_deletes = reverse_each("dashboard:manifest_delete", fixed, digests, placeholder=_DIGEST_PLACEHOLDER)
    rows = []
    for i, tag in enumerate(tags):
        size = sizes.get(tag.manifest_id, tag.manifest.size)
        rows.append(
            {
                "tag": tag,
                "digest": digests[i],
                "short_digest": short_digest(digests[i]),
                "manifest_url": manifest_urls[i],
                "platforms": platforms.get(tag.manifest_id, []),
                "size": size,
                "size_text": binarysize(size),
                "pushed": moment(tag.last_pushed_at),
                "pulled": moment(tag.last_pulled_at),
                "immutable": rules.reason(repository=repository.name, tag=tag.name, immutable=tag.immutable),
                "pull_tag": f"docker pull {prefix}/{repository.name}:{tag.name}",
                "pull_digest": f"docker pull {prefix}/{repository.name}@{digests[i]}",
                "delete_tag_url": tag_deletes[i],
                "delete_manifest_url": manifest_deletes[i],
            }
        )
    return rows


def _detail_context(request: HttpRequest, repository: Repository, settings_form: RepositorySettingsForm | None) -> dict[str, Any]:
    org = request.org  # type: ignore[attr-defined]
    tags = selectors.tag_list_detailed(tenant=org.tenant, repository=repository).order_by("name", "pk")
    stats = selectors.repository_stats(tenant=org.tenant, repository=repository)
    paginator = Paginator(tags, TAGS_PER_PAGE)
    paginator.count = stats["tag_count"]  # the COUNT the stats just ran, not a second one
    page = paginator.get_page(request.GET.get("page"))
    prefix = registry_endpoints(org.tenant.slug).prefix
    if settings_form is None:
        settings_form = RepositorySettingsForm(
            initial={"visibility": repository.visibility, "description": repository.description}
        )
    return {
        "nav_current": "repositories",
        "repository": repository,
        "stats": stats,
        "page": page,
        "rows": _tag_rows(request, repository, list(page.object_list), prefix),
        "can_manage": org.at_least(Membership.Role.ADMIN),
        "settings_form": settings_form,
    }


@org_view()
@require_GET
def repository(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """One repository: its tags (digest, platforms, size, pushes and pulls, immutability), pull lines, settings for admins."""
    found = repository_or_404(request, name)
    return render(request, "dashboard/repositories/detail.html", _detail_context(request, found, None))


@org_view(min_role=Membership.Role.ADMIN)
@require_POST
def repository_settings(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Change visibility and description through registry.services.repositories.repository_update (audited)."""
    found = repository_or_404(request, name)
    form = RepositorySettingsForm(request.POST)
    if form.is_valid():
        try:
            repository_update(tenant=request.org.tenant, name=found.name, actor=request.user.get_username(), **form.cleaned_data)  # type: ignore[attr-defined]
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Saved the settings of {found.name}.")
            return redirect("dashboard:repository", slug, found.name)
    return render(request, "dashboard/repositories/detail.html", _detail_context(request, found, form), status=400)
