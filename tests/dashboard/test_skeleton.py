"""The dashboard's frame: who reaches an organisation, the switcher, the headers every page carries."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import CALLERS, ROLES, assert_denied

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("caller", CALLERS)
def test_org_overview_access(as_caller, caller):
    response = as_caller(caller).get("/orgs/acme/", follow=caller in ROLES)  # acme has no repository: Getting started
    if caller in ROLES:
        assert response.status_code == 200 and response.redirect_chain == [("/orgs/acme/start/", 302)]
        assert b"acme" in response.content
    else:
        assert_denied(response, caller)


def test_unknown_org_is_404_like_a_foreign_one(as_caller):
    assert as_caller("owner").get("/orgs/nope/").status_code == 404
    assert as_caller("other").get("/orgs/acme/").status_code == 404


def test_root_sends_anonymous_to_login_and_members_to_their_organisations(as_caller):
    assert as_caller("anonymous").get("/")["Location"] == "/accounts/login/"
    assert as_caller("owner").get("/")["Location"] == "/orgs/"
    home = as_caller("owner").get("/orgs/")
    assert home.status_code == 200 and b"/orgs/acme/" in home.content and b"globex" not in home.content


def test_pages_carry_csp_and_frame_headers(as_caller):
    response = as_caller("owner").get("/orgs/acme/", follow=True)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
