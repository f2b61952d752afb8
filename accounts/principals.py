"""Who a credential names: a user (password or personal access token) or a robot account."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from accounts.models import PersonalAccessToken, RobotAccount, Tenant, User


@dataclass(frozen=True)
class Principal:
    """An authenticated user or robot, with what its credential narrows it to.

    `scopes` None means a password: the tenant role alone decides. `repositories` holds
    fnmatch patterns of repository names (within a tenant); empty means no restriction.
    """

    kind: Literal["user", "robot"]
    name: str  # the username, or "<tenant-slug>+<robot-name>"
    user: User | None
    robot: RobotAccount | None
    tenant_id: int | None  # the robot's tenant; None for users
    scopes: tuple[str, ...] | None
    repositories: tuple[str, ...]
    # The personal access token that authenticated the user, if one did (refresh tokens inherit its limits).
    access_token: PersonalAccessToken | None = None
    # The user's membership in one tenant, read in the same query as the token (accounts.bearer): (slug,
    # (tenant, role) or None when not a member there). None: not looked up. Never outlives the request.
    membership: tuple[str, tuple[Tenant, str] | None] | None = field(default=None, compare=False)

    def repository_allowed(self, repository: str) -> bool:
        """Whether the repository name matches the patterns (always, with none); `*` also crosses `/`."""
        return repository_matches(self.repositories, repository)


def repository_matches(patterns: tuple[str, ...], repository: str) -> bool:
    """Whether a repository name (within its tenant) matches any fnmatch pattern; True for no patterns."""
    return not patterns or any(fnmatch.fnmatchcase(repository, p) for p in patterns)


def pattern_literal_prefix(pattern: str) -> str:
    """The part of a pattern before its first wildcard (`*`, `?`, `[`): every name it matches starts with this."""
    for i, char in enumerate(pattern):
        if char in "*?[":
            return pattern[:i]
    return pattern


def principal_for_password(user: User) -> Principal:
    """A user who gave their password: no scope or repository limit beyond their roles."""
    return Principal(kind="user", name=user.username, user=user, robot=None, tenant_id=None, scopes=None, repositories=())


def principal_for_access_token(token: PersonalAccessToken) -> Principal:
    """A user authenticated by a personal access token, limited to its scopes and patterns."""
    user = token.user
    return Principal(
        kind="user",
        name=user.username,
        user=user,
        robot=None,
        tenant_id=None,
        scopes=tuple(token.scopes),
        repositories=tuple(token.repositories or ()),
        access_token=token,
    )


def principal_for_robot(robot: RobotAccount) -> Principal:
    """A robot account: its tenant only, its scopes and patterns."""
    return Principal(
        kind="robot",
        name=robot.username,
        user=None,
        robot=robot,
        tenant_id=robot.tenant_id,
        scopes=tuple(robot.scopes),
        repositories=tuple(robot.repositories or ()),
    )
