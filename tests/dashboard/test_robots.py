"""Robot accounts page: /orgs/<slug>/robots/ (admins and owners): list, create (secret once), edit, rotate, revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import AuditEvent, RobotAccount
from accounts.services import robot_create
from tests.dashboard.conftest import CALLERS, allowed, assert_denied
from tests.helpers import Reg, basic

pytestmark = pytest.mark.django_db
ADMINS = allowed("admin")
REFUSED = [c for c in CALLERS if c not in ADMINS]
SECRET = re.compile(r'<pre id="secret-value"[^>]*>(wharf_rbt_[^<]+)</pre>')


def state(tenant) -> tuple:
    robots = sorted(
        RobotAccount.objects.filter(tenant=tenant).values_list(
            "name", "secret_hash", "scopes", "repositories", "expires_at", "revoked_at"
        )
    )
    return robots, AuditEvent.objects.count()


@pytest.fixture
def ci(tenant):
    return robot_create(tenant=tenant, name="ci", scopes=["pull"], repositories=["team/*"], actor="seed")


def create(client, **data):
    form = {"name": "deploy", "scopes": ["pull", "push"], "repositories": "", "expires_in_days": ""} | data
    return client.post("/orgs/acme/robots/", form)


@pytest.mark.parametrize("caller", CALLERS)
def test_robots_page_access(as_caller, users, ci, caller):
    response = as_caller(caller).get("/orgs/acme/robots/")
    if caller not in ADMINS:
        return assert_denied(response, caller)
    body = response.content.decode()
    assert response.status_code == 200 and "acme+ci" in body and "team/*" in body and "Create robot" in body


@pytest.mark.parametrize("caller", CALLERS)
def test_robot_edit_page_access(as_caller, users, ci, caller):
    response = as_caller(caller).get("/orgs/acme/robots/ci/")
    if caller not in ADMINS:
        return assert_denied(response, caller)
    assert response.status_code == 200 and 'value="team/*"' not in response.content.decode()  # a textarea, not an input
    assert "team/*</textarea>" in response.content.decode()


def test_robots_page_queries_do_not_grow_with_rows(as_caller, users, tenant, django_assert_max_num_queries):
    client = as_caller("owner")
    robot_create(tenant=tenant, name="r0", scopes=["pull"])
    client.get("/orgs/acme/robots/")
    with django_assert_max_num_queries(12) as few:
        client.get("/orgs/acme/robots/")
    for i in range(1, 20):
        robot_create(tenant=tenant, name=f"r{i}", scopes=["pull"])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert b"acme+r19" in client.get("/orgs/acme/robots/").content


@pytest.mark.parametrize("caller", REFUSED)
def test_every_robot_post_refused_changes_nothing(as_caller, users, tenant, ci, caller):
    before = state(tenant)
    client = as_caller(caller)
    assert_denied(create(client), caller)
    assert_denied(client.post("/orgs/acme/robots/ci/", {"scopes": ["push"], "repositories": ""}), caller)
    assert_denied(client.post("/orgs/acme/robots/ci/rotate/"), caller)
    assert_denied(client.post("/orgs/acme/robots/ci/revoke/"), caller)
    assert state(tenant) == before


@pytest.mark.parametrize("caller", ADMINS)
def test_create_shows_the_secret_once_and_it_logs_in(as_caller, users, tenant, caller):
    client = as_caller(caller)
    response = create(client, repositories="team/*\napps/*", expires_in_days="30")
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/robots/"
    page = client.get("/orgs/acme/robots/").content.decode()
    secret = SECRET.search(page).group(1)
    assert "docker login 127.0.0.1:" in page and "-u acme+deploy --password-stdin" in page
    assert 'data-copy="#secret-value"' in page
    assert secret not in client.get("/orgs/acme/robots/").content.decode()  # never again
    robot = RobotAccount.objects.get(tenant=tenant, name="deploy")
    assert robot.scopes == ["pull", "push"] and robot.repositories == ["team/*", "apps/*"] and robot.expires_at is not None
    assert AuditEvent.objects.filter(action="robot.create", target="acme+deploy", actor=users[caller].username).exists()
    assert Reg(Client(), basic("acme+deploy", secret)).get("/v2/acme/team/app/tags/list").status_code == 404  # authenticated
    assert Reg(Client(), basic("acme+deploy", "wharf_rbt_wrong")).get("/v2/acme/team/app/tags/list").status_code == 401


def test_create_bad_input_says_why_and_changes_nothing(as_caller, users, tenant, ci):
    before = state(tenant)
    client = as_caller("admin")
    cases = [
        ({"name": "ci"}, "already has a robot named &#x27;ci&#x27;"),
        ({"name": "Bad Name"}, "must be 1 to 63 characters"),
        ({"expires_in_days": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"expires_in_days": "3651"}, "Ensure this value is less than or equal to 3650."),
        ({"expires_in_days": "soon"}, "Enter a whole number."),
        ({"scopes": []}, "This field is required."),
        ({"scopes": ["admin"]}, "Select a valid choice. admin is not one of the available choices."),
        ({"repositories": "Team/App"}, "may hold only lower-case letters"),
    ]
    for data, message in cases:
        response = create(client, **data)
        assert response.status_code == 400 and message in response.content.decode(), data
    assert state(tenant) == before


def test_edit_changes_scopes_patterns_and_expiry(as_caller, users, tenant, ci):
    client = as_caller("owner")
    response = client.post(
        "/orgs/acme/robots/ci/", {"scopes": ["pull", "delete"], "repositories": "apps/*", "expires_in_days": "7"}
    )
    assert response.status_code == 302
    robot = RobotAccount.objects.get(tenant=tenant, name="ci")
    assert robot.scopes == ["pull", "delete"] and robot.repositories == ["apps/*"] and robot.expires_at is not None
    client.post("/orgs/acme/robots/ci/", {"scopes": ["pull"], "repositories": "", "never_expires": "on"})
    robot.refresh_from_db()
    assert robot.scopes == ["pull"] and robot.repositories == [] and robot.expires_at is None
    assert AuditEvent.objects.filter(action="robot.update", target="acme+ci").count() == 2


def test_edit_bad_input_changes_nothing(as_caller, users, tenant, ci):
    before = state(tenant)
    client = as_caller("owner")
    cases = [
        ({"scopes": ["pull"], "expires_in_days": "-3"}, "greater than or equal to 1"),
        ({"scopes": ["pull"], "expires_in_days": "5", "never_expires": "on"}, "not both"),
        ({"scopes": []}, "This field is required."),
        ({"scopes": ["pull"], "repositories": "/bad"}, "empty path component"),
    ]
    for data, message in cases:
        response = client.post("/orgs/acme/robots/ci/", {"repositories": ""} | data)
        assert response.status_code == 400 and message in response.content.decode(), data
    assert client.get("/orgs/acme/robots/nope/").status_code == 404
    assert state(tenant) == before


def test_rotate_shows_a_new_secret_once_and_the_old_stops(as_caller, users, tenant, ci):
    client = as_caller("admin")
    response = client.post("/orgs/acme/robots/ci/rotate/", follow=True)
    new = SECRET.search(response.content.decode()).group(1)
    assert new != ci.secret and "the old one no longer works" in response.content.decode()
    assert new not in client.get("/orgs/acme/robots/").content.decode()
    assert Reg(Client(), basic("acme+ci", ci.secret)).get("/v2/acme/team/x/tags/list").status_code == 401
    assert Reg(Client(), basic("acme+ci", new)).get("/v2/acme/team/x/tags/list").status_code == 404


def test_revoke_ends_the_robot(as_caller, users, tenant, ci):
    client = as_caller("admin")
    page = client.post("/orgs/acme/robots/ci/revoke/", follow=True).content.decode()
    assert "Robot acme+ci revoked." in page and "revoked</span>" in page
    assert RobotAccount.objects.get(tenant=tenant, name="ci").revoked_at is not None
    assert Reg(Client(), basic("acme+ci", ci.secret)).get("/v2/acme/team/x/tags/list").status_code == 401
    before = state(tenant)
    rotated = client.post("/orgs/acme/robots/ci/rotate/", follow=True).content.decode()
    assert "Robot &#x27;ci&#x27; is revoked; create a new one." in rotated
    assert state(tenant) == before
