"""Deleting a tag, a manifest or a whole repository: a confirmation page (what goes, what it frees), then a POST. Admins and owners.

Each calls the service the admin API's DELETE calls: manifest_delete by tag or by digest
(refused for immutable tags, or while an index holds the manifest), repository_delete_start
(the repository_delete job). A refusal is shown as a message on the confirmation page; nothing changes.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.models import Membership
from gateway.core.errors import ApplicationError
from gateway.dashboard.access import org_view
from gateway.dashboard.forms.repositories import RepositoryDeleteForm
from gateway.dashboard.views.repositories import repository_or_404
from gateway.registry import selectors
from gateway.registry.browse_selectors import manifest_reclaimable_bytes, tag_reclaimable_bytes
from gateway.registry.digests import is_digest
from gateway.registry.errors import Denied, ManifestUnknown
from gateway.registry.models import Repository
from gateway.registry.services.immutability import immutable_rules_load
from gateway.registry.services.manifests import manifest_delete
from gateway.registry.services.repository_delete import repository_delete_start

ADMIN = Membership.Role.ADMIN


def _delete(request: HttpRequest, repository: Repository, reference: str) -> str | None:
    """Run manifest_delete (by tag or digest); the refusal's message, or None when it was deleted."""
    try:
        manifest_delete(
            tenant=request.org.tenant,  # type: ignore[attr-defined]
            repository=repository,
            reference=reference,
            actor=request.user.get_username(),
            ip=request.META.get("REMOTE_ADDR"),
        )
    except ManifestUnknown:
        raise Http404("Already gone.") from None
    except (Denied, ApplicationError) as exc:  # immutable tag, held by an index; a suspended tenant
        return exc.message
    return None


@org_view(min_role=ADMIN)
@require_http_methods(["GET", "POST"])
def tag_delete(request: HttpRequest, slug: str, name: str, tag: str) -> HttpResponse:
    """Confirm (the manifest it names, the bytes freed, a refusal if immutable), then delete the tag; the manifest stays."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repository = repository_or_404(request, name)
    found = selectors.tag_get(tenant=tenant, repository=repository, name=tag)
    if found is None:
        raise Http404("No such tag.")
    refusal = immutable_rules_load(tenant=tenant).reason(repository=repository.name, tag=found.name, immutable=found.immutable)
    refusal = f"Tag {found.name} is {refusal} and cannot be deleted." if refusal else None
    if request.method == "POST" and refusal is None:
        refusal = _delete(request, repository, found.name)
        if refusal is None:
            messages.success(request, f"Deleted tag {found.name} of {repository.name}.")
            return redirect("dashboard:repository", slug, repository.name)
    context = {
        "nav_current": "repositories",
        "repository": repository,
        "tag": found,
        "refusal": refusal,
        "frees": tag_reclaimable_bytes(tenant=tenant, tag=found),
        "other_tags": selectors.tag_list_detailed(tenant=tenant, repository=repository)
        .filter(manifest_id=found.manifest_id)
        .exclude(pk=found.pk)
        .count(),
    }
    return render(request, "dashboard/repositories/tag_delete.html", context, status=409 if request.method == "POST" else 200)


@org_view(min_role=ADMIN)
@require_http_methods(["GET", "POST"])
def manifest_delete_view(request: HttpRequest, slug: str, name: str, digest: str) -> HttpResponse:
    """Confirm (its tags, the bytes freed), then delete the manifest and its tags; refused while an index or an immutable tag holds it."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repository = repository_or_404(request, name)
    manifest = selectors.manifest_get(tenant=tenant, repository=repository, reference=digest) if is_digest(digest) else None
    if manifest is None:
        raise Http404("No such manifest.")
    refusal = None
    if request.method == "POST":
        refusal = _delete(request, repository, manifest.digest)
        if refusal is None:
            messages.success(request, f"Deleted manifest {manifest.digest} of {repository.name} and its tags.")
            return redirect("dashboard:repository", slug, repository.name)
    tags = list(selectors.tag_list_detailed(tenant=tenant, repository=repository).filter(manifest=manifest).order_by("name"))
    rules = immutable_rules_load(tenant=tenant)
    context = {
        "nav_current": "repositories",
        "repository": repository,
        "manifest": manifest,
        "tags": [(t, rules.reason(repository=repository.name, tag=t.name, immutable=t.immutable)) for t in tags],
        "refusal": refusal,
        "frees": manifest_reclaimable_bytes(tenant=tenant, manifest=manifest),
    }
    return render(request, "dashboard/repositories/manifest_delete.html", context, status=409 if refusal else 200)


@org_view(min_role=ADMIN)
@require_http_methods(["GET", "POST"])
def repository_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Typed confirmation, then repository_delete_start: the name is free at once, a job empties the repository."""
    tenant = request.org.tenant  # type: ignore[attr-defined]
    repository = repository_or_404(request, name)
    form = RepositoryDeleteForm(request.POST or None, name=repository.name)
    if request.method == "POST" and form.is_valid():
        try:
            job = repository_delete_start(
                tenant=tenant, name=repository.name, actor=request.user.get_username(), ip=request.META.get("REMOTE_ADDR")
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Deleting {repository.name}: job {job.pk} is emptying it in the background.")
            return redirect("dashboard:repositories", slug)
    context = {
        "nav_current": "repositories",
        "repository": repository,
        "form": form,
        "stats": selectors.repository_stats(tenant=tenant, repository=repository),
    }
    return render(request, "dashboard/repositories/repository_delete.html", context, status=400 if form.errors else 200)
