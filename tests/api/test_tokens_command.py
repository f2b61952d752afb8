"""`manage.py create_token --scopes` issues admin API tokens; the admin scope is for staff only."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import PersonalAccessToken
from tests.api.conftest import Api
from tests.factories import UserFactory


@pytest.mark.django_db
def test_create_token_with_api_scopes_reaches_the_api():
    UserFactory(username="alice")
    out = io.StringIO()
    call_command("create_token", "alice", "--scopes", "api:read,api:write", stdout=out)
    secret = out.getvalue().strip()
    assert PersonalAccessToken.objects.get(user__username="alice").scopes == ["api:read", "api:write"]
    assert Api(secret).get("/api/v1/user").json()["username"] == "alice"


@pytest.mark.django_db
def test_create_token_default_stays_registry_only():
    UserFactory(username="bob")
    call_command("create_token", "bob", stdout=io.StringIO())
    assert PersonalAccessToken.objects.get(user__username="bob").scopes == ["pull", "push", "delete"]


@pytest.mark.django_db
def test_admin_scope_needs_a_staff_user():
    UserFactory(username="carol")
    UserFactory(username="dan", is_staff=True)
    with pytest.raises(CommandError, match="staff"):
        call_command("create_token", "carol", "--scopes", "admin", stdout=io.StringIO())
    assert not PersonalAccessToken.objects.filter(user__username="carol").exists()
    call_command("create_token", "dan", "--scopes", "admin,api:read", stdout=io.StringIO())
    assert PersonalAccessToken.objects.get(user__username="dan").scopes == ["api:read", "admin"]
