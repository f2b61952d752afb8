"""Personal access tokens page: /settings/tokens/ (any signed-in user): list, create (secret once), revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import AuditEvent, PersonalAccessToken
from accounts.services import access_token_issue
from gateway.registry.v2.auth import forget_cached_credentials
from tests.dashboard.conftest import CALLERS
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db
SIGNED_IN = [c for c in CALLERS if c != "anonymous"]
SECRET = re.compile(r'<pre id="secret-value"[^>]*>(wharf_pat_[^<]+)</pre>')


def state() -> tuple:
    tokens = sorted(PersonalAccessToken.objects.values_list("user__username", "name", "scopes", "revoked_at"))
    return tokens, AuditEvent.objects.count()


def create(client, **data):
    form = {"name": "laptop", "scopes": ["pull", "push"], "repositories": "", "expires_in_days": ""} | data
    return client.post("/settings/tokens/", form)


@pytest.mark.parametrize("caller", CALLERS)
def test_tokens_page_access_shows_only_my_tokens(as_caller, users, caller):
    for name, user in users.items():
        access_token_issue(user=user, name=f"tok-of-{name}")
    response = as_caller(caller).get("/settings/tokens/")
    if caller == "anonymous":
        assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/settings/tokens/"
        return
    body = response.content.decode()
    assert response.status_code == 200 and f"tok-of-{caller}" in body
    assert [n for n in users if f"tok-of-{n}<" in body] == [caller]
    assert ('value="admin"' in body) is (caller == "staff")  # the admin scope is offered to staff only


def test_account_area_links_the_page(as_caller, users):
    assert b'href="/settings/tokens/"' in as_caller("reader").get("/orgs/").content


def test_tokens_page_queries_do_not_grow_with_rows(as_caller, users, django_assert_max_num_queries):
    client = as_caller("writer")
    access_token_issue(user=users["writer"], name="t0")
    client.get("/settings/tokens/")
    with django_assert_max_num_queries(10) as few:
        client.get("/settings/tokens/")
    for i in range(1, 20):
        access_token_issue(user=users["writer"], name=f"t{i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert b"t19" in client.get("/settings/tokens/").content


def test_anonymous_posts_change_nothing(as_caller, users):
    token = access_token_issue(user=users["reader"], name="keep")
    before = state()
    client = as_caller("anonymous")
    assert create(client).status_code == 302
    assert client.post(f"/settings/tokens/{token.token.pk}/revoke/").status_code == 302
    assert state() == before


@pytest.mark.parametrize("caller", SIGNED_IN)
def test_create_shows_the_secret_once_and_it_authenticates(as_caller, users, caller):
    client = as_caller(caller)
    response = create(client, repositories="team/*", expires_in_days="90")
    assert response.status_code == 302 and response["Location"] == "/settings/tokens/"
    page = client.get("/settings/tokens/").content.decode()
    secret = SECRET.search(page).group(1)
    username = users[caller].username
    assert f"-u {username} --password-stdin" in page and 'data-copy="#secret-login"' in page
    assert secret not in client.get("/settings/tokens/").content.decode()
    token = PersonalAccessToken.objects.get(user=users[caller], name="laptop")
    assert token.scopes == ["pull", "push"] and token.repositories == ["team/*"] and token.expires_at is not None
    assert AuditEvent.objects.filter(action="token.issue", actor=username).exists()
    assert Reg(Client(), basic(username, secret)).get("/v2/").status_code == 200


def test_admin_scope_for_staff_only(as_caller, users):
    before = state()
    refused = create(as_caller("owner"), scopes=["admin"])
    assert (
        refused.status_code == 400
        and "Select a valid choice. admin is not one of the available choices." in refused.content.decode()
    )
    assert state() == before
    assert create(as_caller("staff"), scopes=["api:read", "admin"]).status_code == 302
    assert PersonalAccessToken.objects.get(user=users["staff"]).scopes == ["api:read", "admin"]


def test_create_bad_input_says_why_and_changes_nothing(as_caller, users):
    before = state()
    client = as_caller("reader")
    cases = [
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 101}, "Ensure this value has at most 100 characters"),
        ({"expires_in_days": "0"}, "greater than or equal to 1"),
        ({"expires_in_days": "99999"}, "less than or equal to 3650"),
        ({"scopes": ["root"]}, "Select a valid choice. root is not one of the available choices."),
        ({"repositories": "a//b"}, "empty path component"),
    ]
    for data, message in cases:
        response = create(client, **data)
        assert response.status_code == 400 and message in response.content.decode(), data
    assert state() == before


def test_revoked_token_no_longer_authenticates(as_caller, users):
    client = as_caller("writer")
    issued = access_token_issue(user=users["writer"], name="ci")
    registry = Reg(Client(), basic("acme-writer", issued.secret))
    assert registry.get("/v2/").status_code == 200
    page = client.post(f"/settings/tokens/{issued.token.pk}/revoke/", follow=True).content.decode()
    assert "Token revoked; it no longer works." in page and "revoked</span>" in page
    forget_cached_credentials()  # verified Basic credentials are cached for seconds per process: let that pass
    assert registry.get("/v2/").status_code == 401
    assert AuditEvent.objects.filter(action="token.revoke", actor="acme-writer").exists()


def test_revoking_someone_elses_token_changes_nothing(as_caller, users):
    theirs = access_token_issue(user=users["owner"], name="owners")
    before = state()
    page = as_caller("other").post(f"/settings/tokens/{theirs.token.pk}/revoke/", follow=True).content.decode()
    assert "No such token." in page
    assert state() == before
    assert Reg(Client(), basic("owner", theirs.secret)).get("/v2/").status_code == 200
