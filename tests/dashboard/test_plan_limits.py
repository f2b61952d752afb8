"""The plan's limits in the dashboard (docs/decisions/0039): a refused creation shows the limit's message and changes
nothing; a new organisation gets the default plan."""

from __future__ import annotations

import html

import pytest
from django.apps import apps

from accounts.invitations import invitation_create
from accounts.limits import TenantLimits, tenant_limits_get
from accounts.models import Invitation, Membership, RobotAccount, Tenant
from accounts.services import tenant_limits_set
from billing.models import Plan
from billing.selectors import subscription_get
from gateway.registry.models import Repository
from tests.billing.conftest import seed_migration
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def limits(tenant, **values) -> None:
    tenant_limits_set(tenant=tenant, limits=TenantLimits(**values))


def shows(response, text: str) -> None:
    assert response.status_code == 400, response.status_code
    assert text in html.unescape(response.content.decode())


def test_robot_creation_past_the_limit_shows_the_limit(as_caller, users, tenant):
    limits(tenant, robots_limit=1)
    client = as_caller("admin")
    form = {"scopes": ["pull"], "repositories": "", "expires_in_days": ""}
    assert client.post("/orgs/acme/robots/", {"name": "one", **form}).status_code == 302
    response = client.post("/orgs/acme/robots/", {"name": "two", **form})
    shows(response, "robots limit reached: the plan of 'acme' allows 1 robots, it has 1")
    shows(response, "/orgs/acme/billing/")
    assert list(RobotAccount.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["one"]


def test_invitation_past_the_members_limit_shows_the_limit(as_caller, users, tenant):
    limits(tenant, members_limit=4)  # owner, reader, writer, admin
    response = as_caller("admin").post("/orgs/acme/members/invite/", {"email": "ivy@example.com", "role": "reader"})
    shows(response, "members limit reached: the plan of 'acme' allows 4 members, it has 4")
    assert not Invitation.objects.exists()


def test_making_a_repository_private_past_the_limit_shows_the_limit(as_caller, users, tenant):
    Repository.objects.create(tenant=tenant, name="team/app", visibility="public")
    Repository.objects.create(tenant=tenant, name="other")
    limits(tenant, private_repositories_limit=1)
    data = {"visibility": "private", "description": "changed"}
    response = as_caller("owner").post("/orgs/acme/repositories/team/app/-/settings/", data)
    shows(response, "private repositories limit reached: the plan of 'acme' allows 1 private repositories, it has 1")
    repo = Repository.objects.get(name="team/app")
    assert repo.visibility == "public" and repo.description == ""


def test_a_new_organisation_gets_the_default_plan(as_caller, users, settings):
    seed_migration.seed(apps, None)
    settings.GATEWAY_BILLING_DEFAULT_PLAN = "free"
    response = as_caller("staff").post("/orgs/new/", {"slug": "initech", "name": "Initech"})
    assert response["Location"] == "/orgs/initech/start/"
    tenant = Tenant.objects.get(slug="initech")
    assert subscription_get(tenant=tenant).plan.code == "free"
    assert tenant_limits_get(tenant=tenant) == Plan.objects.get(code="free").limits()


def test_accepting_into_a_full_organisation_shows_the_limit_and_keeps_the_invitation(tenant, client):
    ivy = UserFactory(username="ivy", email="ivy@example.com")
    issued = invitation_create(tenant=tenant, email="ivy@example.com", role="writer", by_role="owner")
    limits(tenant, members_limit=1)  # a downgrade while the invitation was pending: the owner fills it
    client.force_login(ivy, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(f"/invitations/{issued.token}/", {"action": "accept"}, follow=True)
    assert response.status_code == 200
    assert "members limit reached: the plan of 'acme' allows 1 members, it has 1" in html.unescape(response.content.decode())
    assert not Membership.objects.filter(tenant=tenant, user=ivy).exists()
    assert Invitation.objects.get(pk=issued.invitation.pk).status() == "pending"
