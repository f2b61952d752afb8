"""The plan's count limits through the admin API (docs/decisions/0039): N-1 → N passes, N → N+1 is a 403 problem
naming the limit and where to raise it, and the refusal creates nothing."""

from __future__ import annotations

import pytest
from django.apps import apps

from accounts.limits import TenantLimits, tenant_limits_get
from accounts.models import Invitation, Membership, Tenant
from accounts.services import robot_revoke, tenant_limits_set
from billing.models import Plan
from billing.selectors import subscription_get
from gateway.registry.models import Repository
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.billing.conftest import seed_migration
from tests.factories import UserFactory, make_member

pytestmark = pytest.mark.django_db
TENANT = "/api/v1/tenants/acme"


def limits(tenant, **values) -> None:
    tenant_limits_set(tenant=tenant, limits=TenantLimits(**values))


def refused(response, *, what: str, limit: int) -> None:
    problem = assert_problem(response, 403)
    assert f"{what} limit reached" in problem["detail"] and f"allows {limit} {what}" in problem["detail"]
    assert "/orgs/acme/billing/" in problem["detail"]


def test_robots_limit(acme, api_write):
    limits(acme, robots_limit=2)
    assert api_write.post(f"{TENANT}/robots", {"name": "ci", "scopes": ["pull"]}).status_code == 201
    assert api_write.post(f"{TENANT}/robots", {"name": "deploy", "scopes": ["pull"]}).status_code == 201  # N-1 → N
    before = snapshot()
    refused(api_write.post(f"{TENANT}/robots", {"name": "third", "scopes": ["pull"]}), what="robots", limit=2)
    assert snapshot() == before
    # A revoked robot no longer counts.
    robot_revoke(tenant=acme, name="ci")
    assert api_write.post(f"{TENANT}/robots", {"name": "third", "scopes": ["pull"]}).status_code == 201


def test_members_limit_counts_pending_invitations_when_inviting(acme, api_write):
    limits(acme, members_limit=3)  # the owner is one
    assert api_write.post(f"{TENANT}/invitations", {"email": "a@example.com", "role": "reader"}).status_code == 201
    assert api_write.post(f"{TENANT}/invitations", {"email": "b@example.com", "role": "reader"}).status_code == 201
    before = (snapshot(), list(Invitation.objects.values_list("pk", "revoked_at")))
    refused(api_write.post(f"{TENANT}/invitations", {"email": "c@example.com", "role": "reader"}), what="members", limit=3)
    assert (snapshot(), list(Invitation.objects.values_list("pk", "revoked_at"))) == before
    # Inviting a pending address again replaces its invitation: no new place is taken, so it passes.
    assert api_write.post(f"{TENANT}/invitations", {"email": "b@example.com", "role": "writer"}).status_code == 201


def test_members_limit_at_accepting_an_invitation(acme, api_write):
    limits(acme, members_limit=3)
    invitee = UserFactory(username="ivy", email="ivy@example.com")
    invitation = api_write.post(f"{TENANT}/invitations", {"email": "ivy@example.com", "role": "writer"}).json()
    make_member(acme, Membership.Role.READER)  # 2 members, and the limit had room for ivy's invitation then
    limits(acme, members_limit=2)  # a downgrade while the invitation was pending
    ivy = Api(token(invitee, ["api:write"]))
    before = snapshot()
    refused(ivy.post("/api/v1/invitations/accept", {"token": invitation["token"]}), what="members", limit=2)
    assert snapshot() == before and Invitation.objects.get().accepted_at is None
    limits(acme, members_limit=3)  # N-1 → N
    assert ivy.post("/api/v1/invitations/accept", {"token": invitation["token"]}).status_code in (200, 201)
    assert Membership.objects.filter(tenant=acme, user=invitee).exists()


def test_private_repositories_limit_when_making_one_private(acme, api_write):
    for name in ("one", "two"):
        Repository.objects.create(tenant=acme, name=name, visibility="public")
    limits(acme, private_repositories_limit=1)
    assert api_write.patch(f"{TENANT}/repositories/one", {"visibility": "private"}).status_code == 200  # 0 → 1
    refused(
        api_write.patch(f"{TENANT}/repositories/two", {"visibility": "private", "description": "x"}),
        what="private repositories",
        limit=1,
    )
    two = Repository.objects.get(name="two")
    assert two.visibility == "public" and two.description == ""  # the whole update rolled back


def test_a_tenant_created_through_the_api_gets_the_default_plan(owner, settings):
    seed_migration.seed(apps, None)
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "pro"
    response = Api(token(owner, ["api:write"])).post("/api/v1/tenants", {"slug": "initech"})
    assert response.status_code == 201, response.content
    tenant = Tenant.objects.get(slug="initech")
    assert subscription_get(tenant=tenant).plan.code == "pro"
    assert tenant_limits_get(tenant=tenant) == Plan.objects.get(code="pro").limits()
    assert response.json()["storage_quota_bytes"] == Plan.objects.get(code="pro").storage_quota_bytes
