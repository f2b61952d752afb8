"""Who may do what: (tenant role × token scopes) → allowed actions on a repository."""

from __future__ import annotations

from accounts.models import Membership

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Membership.Role.OWNER: frozenset({"pull", "push", "delete"}),
    Membership.Role.ADMIN: frozenset({"pull", "push", "delete"}),
    Membership.Role.WRITER: frozenset({"pull", "push"}),
    Membership.Role.READER: frozenset({"pull"}),
}


def allowed_actions(*, role: str | None, scopes: tuple[str, ...] | None) -> frozenset[str]:
    """Actions a member with `role` may take, narrowed by a token's scopes (None: a password)."""
    actions = ROLE_ACTIONS.get(role or "", frozenset())
    if scopes is not None:
        actions = actions & frozenset(scopes)
    return actions
