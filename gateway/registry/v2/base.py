"""RegistryView: the one base class of every /v2/ view.

It owns what every handler needs and none should repeat: the API version header,
authentication, resolving the tenant (from the host, or the first path component) and the
repository name, the scope check declared in `scope_map`, and rendering OCI errors.
Plain Django views, not DRF: bodies are streamed from the WSGI input and bytes are served
exactly, so DRF's parsers and renderers would only get in the way (docs/decisions/0004).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Tenant
from gateway.core.errors import ApplicationError
from gateway.registry import access, selectors
from gateway.registry.access import host_tenant_slug
from gateway.registry.errors import Denied, MethodNotAllowed, NameUnknown, RegistryError, StorageUnavailableError, Unauthorized
from gateway.registry.models import Repository
from gateway.registry.names import MAX_NAME, REPOSITORY_RE
from gateway.registry.v2.auth import ANONYMOUS, BadCredentials, Identity, authenticate
from gateway.storage import StorageUnavailable

log = logging.getLogger(__name__)
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_ACTION_SCOPE = {"pull": "pull", "push": "pull,push", "delete": "delete"}


@dataclass
class Target:
    """What a request is about: the tenant, the repository name, and what the caller may do."""

    tenant: Tenant
    name: str  # repository name inside the tenant
    full_name: str  # as the client spells it (with the tenant slug in path mode)
    identity: Identity
    actions: frozenset[str] = field(default_factory=frozenset)
    _repository: Repository | None = None

    def repository(self) -> Repository:
        """The existing repository, or NAME_UNKNOWN."""
        if self._repository is None:
            self._repository = selectors.repository_get(tenant=self.tenant, name=self.name)
            if self._repository is None:
                raise NameUnknown(detail={"name": self.full_name})
        return self._repository

    def url(self, suffix: str) -> str:
        return f"/v2/{self.full_name}/{suffix}"


def challenge(request: HttpRequest, *, scope: str = "", error: str = "") -> str:
    """The Bearer challenge pointing clients at our token service (Docker token auth)."""
    parts = [f'realm="{settings.EXTERNAL_URL}/auth/token"', f'service="{request.get_host()}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def render_error(exc: RegistryError | ApplicationError, request: HttpRequest | None = None) -> HttpResponse:
    """The spec's `{"errors": [...]}` answer: an OCI error, or a domain error by its status and code (core/errors.py)."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.detail is not None:
        error["detail"] = exc.detail
    response = HttpResponse(json.dumps({"errors": [error]}), status=exc.status, content_type="application/json")
    for k, v in exc.headers.items():
        response[k] = v
    if exc.status == 401 and "WWW-Authenticate" not in response and request is not None:
        response["WWW-Authenticate"] = challenge(request)
    return response


@method_decorator(csrf_exempt, name="dispatch")
class RegistryView(View):
    """Base of every /v2/ view. Subclasses declare `scope_map` and implement HTTP methods."""

    scope_map: ClassVar[dict[str, str]] = {}
    http_method_names = ["get", "head", "put", "post", "patch", "delete"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        method = request.method or ""
        try:
            handler = getattr(self, method.lower(), None) if method.lower() in self.http_method_names else None
            if handler is None:
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            identity = identity_for(request)
            if "name" in kwargs:
                action = self.scope_map.get(method.upper())
                if action is None:
                    raise MethodNotAllowed(f"{request.method} is not allowed here")
                target = self.resolve(request, identity, kwargs.pop("name"))
                self.require(request, target, action)
                response = handler(request, target, *args, **kwargs)
            else:
                response = handler(request, identity, *args, **kwargs)
        except (RegistryError, ApplicationError) as exc:
            response = render_error(exc, request)
        except StorageUnavailable as exc:
            # The cause names our S3 endpoint, bucket and object key: for the log, not the client.
            log.warning("storage unavailable: %s", exc)
            detail = {"request_id": getattr(request, "request_id", "")}
            response = render_error(StorageUnavailableError(detail=detail, headers={"Retry-After": "30"}), request)
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response

    def resolve(self, request: HttpRequest, identity: Identity, name: str) -> Target:
        """Tenant from the host or the first path component, and the caller's actions there."""
        slug, repo_name = access.split_name(host_slug=host_tenant_slug(request.get_host()), name=name)
        tenant = access.tenant_cached(slug)
        if tenant is None:
            # Unknown tenant: indistinguishable from a private repository the caller may not see.
            return Target(tenant=Tenant(slug=slug), name=repo_name, full_name=name, identity=identity)
        repository = selectors.repository_get(tenant=tenant, name=repo_name)
        public = repository is not None and repository.visibility == Repository.Visibility.PUBLIC
        if identity.bearer:
            actions = (identity.grants or {}).get(f"repository:{name}", frozenset())
            actions = actions | {"pull"} if public else actions
        else:
            actions = access.principal_actions(principal=identity.principal, tenant=tenant, repository=repo_name, public=public)
        return Target(tenant=tenant, name=repo_name, full_name=name, identity=identity, actions=actions, _repository=repository)

    def extra_scopes(self, request: HttpRequest) -> list[str]:
        """Scopes besides the target's that this request needs (a 401 challenge names them all)."""
        return []

    def require(self, request: HttpRequest, target: Target, action: str) -> None:
        """Pass if the caller may `action` the target; else 401 with a challenge naming every scope needed, or 403."""
        if action in target.actions:
            access.suspension_check(tenant=target.tenant, action=action)
            return
        # Several scopes go space-separated into one scope parameter, as Distribution sends them
        # and Docker's token spec, containerd and docker's client parse them.
        scope = " ".join([f"repository:{target.full_name}:{_ACTION_SCOPE[action]}", *self.extra_scopes(request)])
        if target.identity.bearer:
            raise Unauthorized(
                "authentication required",
                detail=[{"Type": "repository", "Name": target.full_name, "Action": action}],
                headers={"WWW-Authenticate": challenge(request, scope=scope, error="insufficient_scope")},
            )
        if target.identity.anonymous:
            raise Unauthorized(headers={"WWW-Authenticate": challenge(request, scope=scope)})
        raise Denied(f"requested access to the resource is denied: {action} on {target.full_name}")


def mount_source_scope(request: HttpRequest) -> list[str]:
    """`repository:<from>:pull` for a cross-repository mount request with a well-formed `from`; else nothing."""
    source = request.GET.get("from", "")
    if request.GET.get("mount") and source and len(source) <= MAX_NAME and REPOSITORY_RE.match(source):
        return [f"repository:{source}:pull"]
    return []


def identity_for(request: HttpRequest) -> Identity:
    try:
        return authenticate(
            request.META.get("HTTP_AUTHORIZATION", ""),
            audience=request.get_host(),
            ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )
    except BadCredentials as exc:
        raise Unauthorized(
            str(exc), headers={"WWW-Authenticate": challenge(request, error="invalid_token" if exc.bearer else "")}
        ) from None


__all__ = ["RegistryView", "Target", "render_error", "challenge", "host_tenant_slug", "identity_for", "ANONYMOUS"]
