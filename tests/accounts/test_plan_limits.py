"""Members and robots limits in accounts' services (docs/decisions/0039): checked under the tenant's row lock."""

from __future__ import annotations

import pytest

from accounts.limits import TenantLimits, billing_url
from accounts.models import Membership, RobotAccount
from accounts.services import membership_set, robot_create, tenant_limits_set
from gateway.core.errors import QuotaExceeded
from tests.factories import UserFactory, make_tenant
from tests.registry.test_upload_limits import in_threads


def limits(tenant, **values) -> None:
    tenant_limits_set(tenant=tenant, limits=TenantLimits(**values))


@pytest.mark.django_db
def test_adding_members_stops_at_the_limit_and_role_changes_go_on(settings):
    settings.EXTERNAL_URL = "https://wharf.example"
    tenant = make_tenant("acme")
    limits(tenant, members_limit=2)
    bob = UserFactory(username="bob")
    membership_set(tenant=tenant, user=bob, role="reader")  # N-1 → N
    with pytest.raises(QuotaExceeded) as refused:
        membership_set(tenant=tenant, user=UserFactory(username="carol"), role="reader")
    assert refused.value.message == (
        "members limit reached: the plan of 'acme' allows 2 members, it has 2; "
        "raise the limit at https://wharf.example/orgs/acme/billing/"
    )
    assert refused.value.extra == {"limit": "members", "max": 2, "count": 2, "billing_url": billing_url(tenant=tenant)}
    assert Membership.objects.filter(tenant=tenant).count() == 2
    membership_set(tenant=tenant, user=bob, role="writer")  # an existing member takes no new place
    assert Membership.objects.get(tenant=tenant, user=bob).role == "writer"


@pytest.mark.django_db
def test_no_limit_means_no_limit():
    tenant = make_tenant("acme")
    for i in range(5):
        robot_create(tenant=tenant, name=f"r{i}", scopes=["pull"])
    assert RobotAccount.objects.filter(tenant=tenant).count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_robot_creations_cannot_pass_the_limit():
    tenant = make_tenant("acme")
    limits(tenant, robots_limit=3)

    def create(i: int) -> str:
        try:
            robot_create(tenant=tenant, name=f"r{i}", scopes=["pull"])
            return "created"
        except QuotaExceeded:
            return "refused"

    assert sorted(in_threads(8, create)) == ["created"] * 3 + ["refused"] * 5
    assert RobotAccount.objects.filter(tenant=tenant).count() == 3
