"""Helpers shared by the accounts management commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError

from gateway.core.errors import ApplicationError


def split_list(values: list[str]) -> list[str]:
    """Repeatable and comma-separated option values, flattened: ["a,b", "c"] → ["a", "b", "c"]."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def add_grant_arguments(parser: argparse.ArgumentParser, *, who: str, scopes_default: str | None) -> None:
    """--scopes, --repos and --expires-days: what a new credential (personal access token or robot) may do, and for how long."""
    scopes_help = "comma-separated: pull,push,delete (registry), api:read,api:write (admin API), admin (staff tokens)"
    if scopes_default is None:
        parser.add_argument("--scopes", required=True, help=scopes_help)
    else:
        parser.add_argument("--scopes", default=scopes_default, help=f"{scopes_help}; default {scopes_default}")
    parser.add_argument(
        "--repos",
        action="append",
        default=[],
        metavar="PATTERN",
        help=f"repository name patterns the {who} may reach (fnmatch, e.g. 'team/*'); repeat or comma-separate; default: all",
    )
    parser.add_argument("--expires-days", type=int, default=None)


def grant_issue(issue: Callable[..., Any], *, scopes: str, repos: list[str], expires_days: int | None, **who: Any) -> str:
    """Issue a credential with the grant options as given on the command line; its secret, or CommandError with the reason."""
    try:
        issued = issue(
            **who, scopes=split_list([scopes]), repositories=split_list(repos), expires_in_days=expires_days, actor="system"
        )
    except ApplicationError as exc:
        raise CommandError(exc.message) from None
    return str(issued.secret)
