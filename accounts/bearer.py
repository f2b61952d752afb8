"""A personal access token, its user and that user's membership in one tenant, in one query (docs/decisions/0037).

The admin API authenticates every request by its bearer token and then checks the caller's role
in the URL's tenant. Done as two ORM queries (token + user, membership + tenant) that was a
quarter of a list page's CPU, mostly query building and compilation (bench/README.md, API
section). This is the same lookup as SQL built once per process. Nothing is cached across
requests: a revoked or expired token, a deactivated user or a changed membership counts on the
next request.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection

from accounts.models import Membership, PersonalAccessToken, Tenant, User
from gateway.core import rawsql


@functools.cache
def _sql() -> str:
    token, user, tenant = rawsql.columns(PersonalAccessToken, "t"), rawsql.columns(User, "u"), rawsql.columns(Tenant, "tn")
    # The membership joins only for the one tenant slug (a LEFT JOIN: a non-member still authenticates).
    return (
        f"SELECT {token}, {user}, m.role, {tenant}"
        f" FROM {PersonalAccessToken._meta.db_table} t"
        f" JOIN {User._meta.db_table} u ON u.id = t.user_id"
        f" LEFT JOIN ({Membership._meta.db_table} m JOIN {Tenant._meta.db_table} tn ON tn.id = m.tenant_id AND tn.slug = %s)"
        " ON m.user_id = u.id"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %s)"
        " LIMIT 1"
    )


def access_token_with_membership(
    *, token_hash: str, tenant_slug: str, now: datetime
) -> tuple[PersonalAccessToken, tuple[Tenant, str] | None] | None:
    """The active token with this hash (`user` loaded) and its user's (tenant, role) in `tenant_slug` (None: no member there).

    The same rows as `PersonalAccessToken.objects.select_related("user").active(now=now)` and
    `Membership.objects.select_related("tenant").filter(tenant__slug=…, user=…)` (accounts.selectors).
    """
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [tenant_slug, token_hash, now])
        row = cursor.fetchone()
    if row is None:
        return None
    end_token = rawsql.width(PersonalAccessToken)
    end_user = end_token + rawsql.width(User)
    token = rawsql.instance(PersonalAccessToken, row[:end_token])
    token.user = rawsql.instance(User, row[end_token:end_user])
    role = row[end_user]
    return token, (None if role is None else (rawsql.instance(Tenant, row[end_user + 1 :]), role))
