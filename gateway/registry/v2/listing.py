"""/v2/ itself, tag lists, the catalog and the referrers API."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from gateway.registry import access, selectors
from gateway.registry.digests import parse_digest
from gateway.registry.errors import Denied, NameUnknown, PaginationInvalid, TagInvalid, Unauthorized
from gateway.registry.services.manifests import referrers_index
from gateway.registry.v2.auth import Identity
from gateway.registry.v2.base import API_VERSION_HEADER, RegistryView, Target, challenge, host_tenant_slug, render_error
from gateway.registry.v2.http import next_link, page_params


def _json(doc: dict, status: int = 200, content_type: str = "application/json") -> HttpResponse:
    return HttpResponse(json.dumps(doc), status=status, content_type=content_type)


class BaseView(RegistryView):
    """GET /v2/: 200 for a known identity, 401 (with the challenge) otherwise."""

    def get(self, request: HttpRequest, identity: Identity) -> HttpResponse:
        if identity.anonymous:
            raise Unauthorized(headers={"WWW-Authenticate": challenge(request)})
        return _json({})

    head = get


class NoRouteView(RegistryView):
    """Any other /v2/ path: a spec-shaped 404 instead of an HTML page."""

    http_method_names = ["get", "head", "put", "post", "patch", "delete"]

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = render_error(NameUnknown("no such registry endpoint", detail={"path": request.path[:300]}), request)
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response


class TagsView(RegistryView):
    scope_map = {"GET": "pull"}

    def get(self, request: HttpRequest, target: Target) -> HttpResponse:
        n, last = page_params(request)
        if last is not None and "\x00" in last:  # no tag holds one, and PostgreSQL cannot compare with one
            raise TagInvalid("last must be a tag (it holds a NUL character)", detail={"last": last[:200]})
        names = selectors.tag_list(tenant=target.tenant, repository=target.repository(), last=last, n=n)
        response = _json({"name": target.full_name, "tags": names[:n] if n is not None else names})
        if n is not None and len(names) > n and n > 0:
            response["Link"] = next_link(target.url("tags/list"), n, names[n - 1])
        return response


class ReferrersView(RegistryView):
    scope_map = {"GET": "pull"}

    def get(self, request: HttpRequest, target: Target, digest: str) -> HttpResponse:
        parse_digest(digest)
        artifact_type = request.GET.get("artifactType") or None
        manifests = selectors.referrers_list(
            tenant=target.tenant, repository=target.repository(), digest=digest, artifact_type=artifact_type
        )
        response = HttpResponse(referrers_index(manifests), content_type="application/vnd.oci.image.index.v1+json")
        if artifact_type:
            response["OCI-Filters-Applied"] = "artifactType"
        return response


class CatalogView(RegistryView):
    """GET /v2/_catalog: the repositories of the tenant(s) the caller belongs to that its credential may reach.

    A personal access token's or robot's repository patterns narrow the list, for Basic
    credentials and for bearer tokens alike (the token names the credential that logged in).
    """

    def get(self, request: HttpRequest, identity: Identity) -> HttpResponse:
        if identity.bearer and "*" not in (identity.grants or {}).get("registry:catalog", frozenset()):
            raise Unauthorized(
                headers={"WWW-Authenticate": challenge(request, scope="registry:catalog:*", error="insufficient_scope")}
            )
        principal = identity.principal or (
            access.principal_for_subject(identity.subject, robot=identity.robot, access_token_id=identity.access_token_id)
            if identity.subject
            else None
        )
        if principal is None:
            raise Unauthorized(headers={"WWW-Authenticate": challenge(request, scope="registry:catalog:*")})
        n, last = page_params(request)
        if last is not None and "\x00" in last:
            raise PaginationInvalid("last must not hold a NUL character")
        member_of = access.principal_tenant_ids(principal)
        slug = host_tenant_slug(request.get_host())
        if slug is not None:
            tenant = access.tenant_cached(slug)
            if tenant is None or tenant.pk not in member_of:
                raise Denied()
            tenant_ids, with_slug = [tenant.pk], False
        else:
            tenant_ids, with_slug = member_of, True
        names = selectors.catalog_list(
            tenant_ids=tenant_ids, with_slug=with_slug, last=last, n=n, patterns=principal.repositories
        )
        response = _json({"repositories": names[:n] if n is not None else names})
        if n is not None and len(names) > n and n > 0:
            response["Link"] = next_link("/v2/_catalog", n, names[n - 1])
        return response
