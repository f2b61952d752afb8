"""Who may do what to which repository: one place for the registry and the token service.

A token request's scopes (`parse_scopes`) are granted as what was asked ∩ what the principal
may do (`grants_for`, the token's `access` claim).

A principal's actions on a repository are its tenant role's actions (a robot's are its
scopes, in its own tenant only), narrowed by a token's scopes and repository patterns.
Public repositories add anonymous pull. Hot lookups (tenant by slug, role) are cached per
process for CACHE_SECONDS: registry clients repeat them on every request, so removing a
member takes up to that long to show; visibility is read fresh every time.

A suspended tenant (docs/decisions/0023) is served like any other for pulls; `suspension_check`
refuses its pushes and deletes with a DENIED that names the suspension. Tokens still carry
what the roles allow, so a client reaches the request and shows that message (a token without
push would only earn a bare 401); the refusal is made at each request, so a token issued
before the suspension cannot push either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from accounts.limits import billing_url
from accounts.models import Membership, Tenant
from accounts.principals import Principal, principal_for_access_token, principal_for_password, principal_for_robot
from accounts.selectors import membership_role_get, tenant_get_served, tenant_membership_get
from accounts.tenant_admin import UNPAID_REASON
from gateway.core.errors import Suspended
from gateway.registry import selectors
from gateway.registry.errors import NameInvalid, RegistryError
from gateway.registry.models import Repository
from gateway.registry.names import validate_repository_name

ALL_ACTIONS = frozenset({"pull", "push", "delete"})
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Membership.Role.OWNER: ALL_ACTIONS,
    Membership.Role.ADMIN: ALL_ACTIONS,
    Membership.Role.WRITER: frozenset({"pull", "push"}),
    Membership.Role.READER: frozenset({"pull"}),
}
CACHE_SECONDS = 10.0
MAX_SCOPES = 20
T = TypeVar("T")
Scope = tuple[str, str, list[str]]  # (type, name, actions) of one scope a token request asks for


class TtlCache:
    """A tiny per-process cache with expiry."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T], *, cache_none: bool = True) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
        if hit and hit[0] > now:
            return hit[1]
        value = load()
        if value is not None or cache_none:
            with self._lock:
                if len(self._data) > 50_000:
                    self._data.clear()
                self._data[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


tenants = TtlCache()
roles = TtlCache()
members = TtlCache()  # (username, tenant pk) -> whether the user is a member (bearer tokens name users by username)


def caches_clear() -> None:
    """Forget cached lookups (tests; after changes that must show at once)."""
    for cache in (tenants, roles, members):
        cache.clear()


def tenant_cached(slug: str) -> Tenant | None:
    return tenants.get(slug, lambda: tenant_get_served(slug=slug))


# What a suspended tenant may no longer do: anything that writes (a cross-repository mount is a push).
SUSPENDED_REFUSES = frozenset({"push", "delete"})


def suspension_check(*, tenant: Tenant, action: str) -> None:
    """Raise Suspended (403 DENIED, the message names the suspension) if `tenant` is suspended and `action` writes."""
    if action in SUSPENDED_REFUSES and tenant.status == Tenant.Status.SUSPENDED:
        if tenant.suspension_reason == UNPAID_REASON:
            raise Suspended(
                f"tenant {tenant.slug!r} is suspended because its subscription is unpaid: {action} is refused until it is paid"
                f" (pulls still work); pay at {billing_url(tenant=tenant)}"
            )
        raise Suspended(
            f"tenant {tenant.slug!r} is suspended: {action} is refused until a platform operator reactivates it"
            " (pulls still work); contact support"
        )


def host_tenant_slug(host: str) -> str | None:
    """`acme` for acme.<REGISTRY_DOMAIN>; None when the host names no tenant."""
    host = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else ""
    domain = settings.REGISTRY_DOMAIN.split(":")[0]
    if host.endswith("." + domain):
        label = host[: -len(domain) - 1]
        if label and "." not in label:
            return label
    return None


def split_name(*, host_slug: str | None, name: str) -> tuple[str, str]:
    """(tenant slug, repository name) for a name as a client spells it; NAME_INVALID if bad."""
    validate_repository_name(name)
    if host_slug is not None:
        return host_slug, name
    slug, _, repo = name.partition("/")
    if not repo:
        raise NameInvalid(f"repository name {name!r} needs a tenant: <tenant>/<repository>", detail={"name": name})
    return slug, repo


def principal_actions(*, principal: Principal | None, tenant: Tenant, repository: str, public: bool) -> frozenset[str]:
    """What `principal` may do to `tenant`'s repository `repository` (anonymous: None)."""
    actions: frozenset[str] = frozenset()
    if principal is not None:
        if principal.kind == "robot":
            actions = ALL_ACTIONS if principal.tenant_id == tenant.pk else frozenset()
        elif principal.user is not None:
            user = principal.user
            role = roles.get((user.pk, tenant.pk), lambda: membership_role_get(tenant=tenant, user=user))
            actions = ROLE_ACTIONS.get(role or "", frozenset())
        if principal.scopes is not None:
            actions &= frozenset(principal.scopes)
        if not principal.repository_allowed(repository):
            actions = frozenset()
    if public:
        actions |= {"pull"}
    return actions


def caller_in_tenant(*, tenant: Tenant, principal: Principal | None, subject: str = "", robot: bool = False) -> bool:
    """Whether the caller belongs to `tenant`: one of its robots, or a member in any role (Basic: `principal`; Bearer: `subject`)."""
    if principal is not None:
        if principal.kind == "robot":
            return principal.tenant_id == tenant.pk
        user = principal.user
        return (
            user is not None
            and roles.get((user.pk, tenant.pk), lambda: membership_role_get(tenant=tenant, user=user)) is not None
        )
    if not subject:
        return False
    if robot:
        return subject.partition("+")[0] == tenant.slug
    return bool(members.get((subject, tenant.pk), lambda: tenant_membership_get(tenant=tenant, username=subject) is not None))


def parse_scopes(values: list[str]) -> list[Scope]:
    """`repository:acme/app:pull,push` → ("repository", "acme/app", ["pull", "push"]); bad ones are skipped."""
    out = []
    for value in values:
        for scope in value.split():
            kind, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name:
                continue
            kind = kind.split("(", 1)[0]  # "repository(plugin)" is a repository
            out.append((kind, name, [a for a in actions.split(",") if a]))
    return out[:MAX_SCOPES]


def grants_for(*, principal: Principal | None, service: str, scopes: list[Scope]) -> list[dict[str, Any]]:
    """The `access` claim: for each scope asked, the actions this principal may take there."""
    host_slug = host_tenant_slug(service)
    grants = []
    for kind, name, wanted in scopes:
        granted: list[str] = []
        if kind == "repository":
            requested = set(ALL_ACTIONS) if "*" in wanted else set(wanted) & ALL_ACTIONS
            try:
                slug, repo = split_name(host_slug=host_slug, name=name)
            except RegistryError:
                slug = repo = ""
            tenant = tenant_cached(slug) if slug else None
            if tenant is not None:
                repository = selectors.repository_get(tenant=tenant, name=repo)
                public = repository is not None and repository.visibility == Repository.Visibility.PUBLIC
                allowed = principal_actions(principal=principal, tenant=tenant, repository=repo, public=public)
                granted = sorted(requested & allowed)
        elif kind == "registry" and name == "catalog" and principal is not None and "*" in wanted:
            granted = ["*"]
        grants.append({"type": kind, "name": name, "actions": granted})
    return grants


def principal_tenant_ids(principal: Principal | None) -> list[int]:
    """Tenants whose catalog the principal may list."""
    if principal is None:
        return []
    if principal.kind == "robot":
        return [principal.tenant_id] if principal.tenant_id else []
    return list(Membership.objects.filter(user=principal.user).values_list("tenant_id", flat=True))


def principal_for_subject(subject: str, *, robot: bool, access_token_id: int | None = None) -> Principal | None:
    """The principal behind a bearer token's `sub`, with the limits of the credential that logged in, if still active.

    A robot (`<tenant>+<robot>`) with its scopes and patterns; a user through a personal access
    token with that token's (None once it is revoked or expired); else a user as by password.
    """
    from accounts.models import PersonalAccessToken, RobotAccount, User

    if robot:
        slug, _, robot_name = subject.partition("+")
        found = RobotAccount.objects.select_related("tenant").filter(tenant__slug=slug, name=robot_name).first()
        return principal_for_robot(found) if found is not None and found.is_active() else None
    if access_token_id is not None:
        token = (
            PersonalAccessToken.objects.active().select_related("user").filter(pk=access_token_id, user__username=subject).first()
        )
        return principal_for_access_token(token) if token is not None and token.user.is_active else None
    user = User.objects.filter(username=subject, is_active=True).first()
    return principal_for_password(user) if user is not None else None
