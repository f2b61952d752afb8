"""Secrets shown once across a redirect (PRG): the POST stashes it in the session, the next GET of the page pops it.

A reload, a second tab or the back button never sees it again: only the SHA-256 stays in the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

_KEY = "dashboard_once"


def stash(request: HttpRequest, page: str, **shown: Any) -> None:
    """Keep `shown` (the secret and what goes with it) for the next render of `page` only."""
    request.session[_KEY] = {"page": page, **shown}


def pop(request: HttpRequest, page: str) -> dict[str, Any] | None:
    """What `stash` kept for `page`, removed from the session; None when nothing (or another page's) was kept."""
    kept = request.session.get(_KEY)
    if not kept or kept.get("page") != page:
        return None
    del request.session[_KEY]
    return kept


def registry_host() -> str:
    """The registry's host (and port) as clients name it in `docker login`."""
    return str(settings.REGISTRY_DOMAIN)


def docker_login_line(username: str) -> str:
    """The `docker login` line for a credential (the secret goes in on stdin, never on the command line)."""
    return f"docker login {registry_host()} -u {username} --password-stdin"
