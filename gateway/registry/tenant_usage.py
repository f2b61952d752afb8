"""Platform-wide reads for operators: every tenant with its stored bytes and member count (docs/decisions/0023).

The one deliberate exception to "every selector filters by tenant first" (house style rule 10):
these serve the staff-only /api/v1/admin/ API, which is about all tenants. Each figure is a
correlated subquery, so a page of tenants costs one query whatever its size (no N+1, and no
join fan-out between blobs, manifests and memberships). Stored bytes are counted as
`selectors.usage_bytes` counts them: each blob once, plus the manifests.
"""

from __future__ import annotations

from django.db.models import BigIntegerField, Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.models import Membership, Tenant
from gateway.registry.models import Blob, Manifest, Repository


def _per_tenant(queryset: QuerySet, aggregate: Sum | Count) -> Coalesce:
    rows = queryset.filter(tenant=OuterRef("pk")).order_by().values("tenant").annotate(total=aggregate).values("total")
    return Coalesce(Subquery(rows, output_field=BigIntegerField()), 0, output_field=BigIntegerField())


def tenant_list_with_usage(*, repositories: bool = False) -> QuerySet[Tenant]:
    """Every tenant, any status, annotated with `stored_bytes` and `member_count` (and, asked, `repository_count`)."""
    qs = Tenant.objects.annotate(
        stored_bytes=_per_tenant(Blob.objects.all(), Sum("size")) + _per_tenant(Manifest.objects.all(), Sum("size")),
        member_count=_per_tenant(Membership.objects.all(), Count("pk")),
    )
    if repositories:
        # Opt-in: the staff console shows it, the admin API does not (one subquery less per page there).
        # Repositories being deleted (a tombstone name) are not counted, as repository_list does not list them.
        qs = qs.annotate(repository_count=_per_tenant(Repository.objects.filter(deleted_name=""), Count("pk")))
    return qs.order_by("slug")


def tenant_get_with_usage(*, slug: str, repositories: bool = False) -> Tenant | None:
    """One tenant (any status) with the same annotations, or None."""
    return tenant_list_with_usage(repositories=repositories).filter(slug=slug).first()
