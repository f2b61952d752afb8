"""Path converters for registry names in /api/v1/ URLs.

A repository name may contain `/` (`team/app/web`), so it spans path segments; a segment `-`
is never part of one (the distribution grammar, gateway/registry/names.py, starts each
component with a letter or digit), so `…/repositories/team/app/-/tags/v1` splits
unambiguously even for a repository called `app/tags` (GitLab's `/-/` separator). The
converters accept any other segments (not NUL, which PostgreSQL cannot compare): a name that
is no repository's is then answered by the view, as a problem+json 404.
"""

from __future__ import annotations

_SEGMENT = r"(?!-(?:/|$))[^/\x00]+"


class RepositoryNameConverter:
    regex = rf"{_SEGMENT}(?:/{_SEGMENT})*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class TagNameConverter(RepositoryNameConverter):
    regex = r"[^/\x00]+"
