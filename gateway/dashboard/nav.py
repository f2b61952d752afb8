"""The organisation sidebar: every section, with the URL name that opens it and the least role that sees it.

A section whose URL name is not routed (yet) is left out, so pages can land one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from accounts.models import Membership
from gateway.dashboard.access import Org

R, W, A = Membership.Role.READER, Membership.Role.WRITER, Membership.Role.ADMIN


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str


SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    # key, label, URL name (takes the slug), least role
    ("start", "Getting started", "dashboard:start", R),
    ("repositories", "Repositories", "dashboard:repositories", R),
    ("usage", "Usage", "dashboard:usage", R),
    ("members", "Members", "dashboard:members", R),
    ("robots", "Robot accounts", "dashboard:robots", A),
    ("webhooks", "Webhooks", "dashboard:webhooks", A),
    ("policies", "Retention and immutability", "dashboard:policies", R),  # any member reads them, as in the API
    ("gc", "Garbage collection", "dashboard:gc", A),
    ("audit", "Audit log", "dashboard:audit", A),
    ("settings", "Settings", "dashboard:settings", A),
    ("billing", "Billing", "dashboard:billing", A),  # owners change the plan, admins see it (decision 0046)
)


def org_nav(org: Org) -> list[NavItem]:
    """The sections `org.role` may open, in sidebar order."""
    items = []
    for key, label, name, role in SECTIONS:
        if not org.at_least(role):
            continue
        try:
            url = reverse(name, args=[org.tenant.slug])
        except NoReverseMatch:
            continue
        items.append(NavItem(key=key, label=label, url=url))
    return items
