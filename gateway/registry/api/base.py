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
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Tenant
from accounts.selectors import membership_role_get, tenant_get
from gateway.core.errors import ApplicationError, QuotaExceeded
from gateway.registry import selectors
from gateway.registry.api.auth import ANONYMOUS, BadCredentials, Identity, authenticate
from gateway.registry.errors import Denied, MethodNotAllowed, NameInvalid, NameUnknown, RegistryError, StorageUnavailableError, Unauthorized
from gateway.registry.models import Repository
from gateway.registry.names import validate_repository_name
from gateway.registry.permissions import allowed_actions
from gateway.storage import StorageUnavailable

log = logging.getLogger(__name__)
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_TTL = 10.0


class _TtlCache:
    """A tiny per-process cache for hot lookups (tenant by slug, role by user+tenant)."""

    def __init__(self) -> None:
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
        if hit and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            if len(self._data) > 50_000:
                self._data.clear()
            self._data[key] = (now + _TTL, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


tenants = _TtlCache()
roles = _TtlCache()


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


def host_tenant_slug(request: HttpRequest) -> str | None:
    """`acme` for a request to acme.<REGISTRY_DOMAIN>; None when the host names no tenant."""
    host = request.get_host().lower().rsplit(":", 1)[0] if not request.get_host().startswith("[") else ""
    domain = settings.REGISTRY_DOMAIN.split(":")[0]
    if host.endswith("." + domain):
        label = host[: -len(domain) - 1]
        if label and "." not in label:
            return label
    return None


def identity_for(request: HttpRequest) -> Identity:
    try:
        return authenticate(request.META.get("HTTP_AUTHORIZATION", ""))
    except BadCredentials as exc:
        raise Unauthorized(str(exc)) from None


def role_for(identity: Identity, tenant: Tenant) -> str | None:
    if identity.user is None:
        return None
    user = identity.user
    return roles.get((user.pk, tenant.pk), lambda: membership_role_get(tenant=tenant, user=user))


def render_error(exc: RegistryError) -> HttpResponse:
    response = HttpResponse(json.dumps({"errors": [exc.as_dict()]}), status=exc.status, content_type="application/json")
    for k, v in exc.headers.items():
        response[k] = v
    if exc.status == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = f'Basic realm="{settings.EXTERNAL_URL}", charset="UTF-8"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class RegistryView(View):
    """Base of every /v2/ view. Subclasses declare `scope_map` and implement HTTP methods."""

    scope_map: ClassVar[dict[str, str]] = {}
    http_method_names = ["get", "head", "put", "post", "patch", "delete"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            handler = getattr(self, request.method.lower(), None) if request.method.lower() in self.http_method_names else None
            if handler is None:
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            identity = identity_for(request)
            if "name" in kwargs:
                action = self.scope_map.get(request.method.upper())
                if action is None:
                    raise MethodNotAllowed(f"{request.method} is not allowed here")
                target = self.resolve(request, identity, kwargs.pop("name"))
                self.require(target, action)
                response = handler(request, target, *args, **kwargs)
            else:
                response = handler(request, identity, *args, **kwargs)
        except RegistryError as exc:
            response = render_error(exc)
        except StorageUnavailable as exc:
            log.warning("storage unavailable: %s", exc)
            response = render_error(StorageUnavailableError(detail=str(exc)[:200], headers={"Retry-After": "30"}))
        except QuotaExceeded as exc:
            response = render_error(Denied(exc.message))
        except ApplicationError as exc:
            response = render_error(Denied(exc.message))
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response

    def resolve(self, request: HttpRequest, identity: Identity, name: str) -> Target:
        """Tenant from the host or the first path component; NAME_INVALID on a bad name."""
        slug = host_tenant_slug(request)
        if slug is None:
            slug, _, repo_name = name.partition("/")
        else:
            repo_name = name
        validate_repository_name(name)
        if not repo_name:
            raise NameInvalid(f"repository name {name!r} needs a tenant: <tenant>/<repository>", detail={"name": name})
        tenant = tenants.get(slug, lambda: tenant_get(slug=slug))
        if tenant is None:
            # Unknown tenant: indistinguishable from one the caller may not see.
            raise Unauthorized() if identity.anonymous else Denied()
        actions = allowed_actions(role=role_for(identity, tenant), scopes=identity.scopes)
        return Target(tenant=tenant, name=repo_name, full_name=name, identity=identity, actions=actions)

    @staticmethod
    def require(target: Target, action: str) -> None:
        if action in target.actions:
            return
        if target.identity.anonymous:
            raise Unauthorized()
        raise Denied(f"requested access to the resource is denied: {action} on {target.full_name}")


def registry_headers(response: HttpResponse, **headers: str) -> HttpResponse:
    for k, v in headers.items():
        response[k.replace("_", "-")] = v
    return response


__all__ = ["RegistryView", "Target", "render_error", "registry_headers", "ANONYMOUS"]
