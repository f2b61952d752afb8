"""Where an organisation's registry is, as `docker` spells it: the path form always, the host form when this deployment serves it.

The registry resolves a tenant from the first path component (`<REGISTRY_DOMAIN>/<slug>/app`)
or from the host (`<slug>.<REGISTRY_DOMAIN>/app`, gateway.registry.access.host_tenant_slug).
The host form needs a DNS name (no subdomain of an IP address exists) that ALLOWED_HOSTS accepts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http.request import validate_host


@dataclass(frozen=True)
class Endpoints:
    domain: str  # REGISTRY_DOMAIN, with its port if any
    path_prefix: str  # what precedes a repository name in the path form: "<domain>/<slug>"
    host: str | None  # "<slug>.<domain>" when the host form is served, else None
    host_refusal: str  # why not, when host is None

    @property
    def prefix(self) -> str:
        """The form the dashboard's commands use (the path form: it works on every deployment)."""
        return self.path_prefix


def _host_refusal(slug: str) -> str:
    domain = settings.REGISTRY_DOMAIN
    hostname = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain
    try:
        ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        pass
    else:
        return f"the registry domain {domain} is an IP address, which has no subdomains"
    if not validate_host(f"{slug}.{hostname}", settings.ALLOWED_HOSTS):
        return f"this deployment does not accept the host {slug}.{hostname} (ALLOWED_HOSTS)"
    return ""


def registry_endpoints(slug: str) -> Endpoints:
    """The organisation `slug`'s registry endpoints on this deployment."""
    domain = settings.REGISTRY_DOMAIN
    refusal = _host_refusal(slug)
    return Endpoints(
        domain=domain, path_prefix=f"{domain}/{slug}", host=None if refusal else f"{slug}.{domain}", host_refusal=refusal
    )
