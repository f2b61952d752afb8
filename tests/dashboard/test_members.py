"""Members and invitations pages: /orgs/<slug>/members/ (reader+ sees, admin+ manages), /invitations/<token>/, /orgs/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.invitations import invitation_create, invitation_revoke
from accounts.models import AuditEvent, Invitation, Membership
from tests.dashboard.conftest import CALLERS, ROLES, allowed, assert_denied
from tests.factories import UserFactory, make_member

pytestmark = pytest.mark.django_db
R = Membership.Role
ADMINS = allowed("admin")


def state(tenant) -> tuple:
    """Everything a members POST could change: memberships and roles, invitations and their states, audit rows."""
    members = sorted(Membership.objects.filter(tenant=tenant).values_list("user__username", "role"))
    invitations = sorted(Invitation.objects.filter(tenant=tenant).values_list("email", "role", "revoked_at", "accepted_at"))
    return members, invitations, AuditEvent.objects.count()


def invite(tenant, email="ivy@example.com", role=R.WRITER):
    owner = Membership.objects.get(tenant=tenant, user__username="owner").user
    return invitation_create(tenant=tenant, email=email, role=role, by_role=R.OWNER, invited_by=owner, actor="owner")


# --- the members page ------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
def test_members_page_access(as_caller, users, tenant, caller):
    invite(tenant)
    response = as_caller(caller).get("/orgs/acme/members/")
    if caller not in ROLES:
        return assert_denied(response, caller)
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("owner", "acme-reader", "acme-writer", "acme-admin"):
        assert name in body
    # Readers and writers see the list only; admins and owners manage and see invitations.
    manages = caller in ADMINS
    assert ("/members/acme-reader/role/" in body) is manages
    assert ("ivy@example.com" in body) is manages
    assert ("Send invitation" in body) is manages


def test_members_page_queries_do_not_grow_with_rows(as_caller, users, tenant, django_assert_max_num_queries):
    client = as_caller("owner")
    client.get("/orgs/acme/members/")
    with django_assert_max_num_queries(12) as few:
        client.get("/orgs/acme/members/")
    for i in range(15):
        make_member(tenant, R.READER, username=f"bulk{i}")
        invite(tenant, email=f"guest{i}@example.com")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/orgs/acme/members/")
    assert b"guest14@example.com" in response.content and b"bulk14</th>" in response.content


ROLE_CALLERS = [c for c in CALLERS if c not in ADMINS]


@pytest.mark.parametrize("caller", ROLE_CALLERS)
def test_role_change_refused_changes_nothing(as_caller, users, tenant, caller):
    before = state(tenant)
    response = as_caller(caller).post("/orgs/acme/members/acme-reader/role/", {"role": "admin"})
    assert_denied(response, caller)
    assert state(tenant) == before


@pytest.mark.parametrize("caller", ADMINS)
def test_role_change_by_admins(as_caller, users, tenant, caller):
    response = as_caller(caller).post("/orgs/acme/members/acme-reader/role/", {"role": "writer"}, follow=True)
    assert Membership.objects.get(tenant=tenant, user__username="acme-reader").role == "writer"
    assert "acme-reader is now writer." in response.content.decode()
    event = AuditEvent.objects.get(action="membership.set", target="acme-reader", detail__role="writer")
    assert event.actor == users[caller].username


def test_admin_cannot_touch_owners_and_sees_why(as_caller, users, tenant):
    before = state(tenant)
    client = as_caller("admin")
    promote = client.post("/orgs/acme/members/acme-reader/role/", {"role": "owner"}, follow=True)
    assert "Choose one of the roles offered." in promote.content.decode()  # owner is not offered to an admin
    demote = client.post("/orgs/acme/members/owner/role/", {"role": "reader"}, follow=True)
    assert "Only an owner may change or remove an owner." in demote.content.decode()
    remove = client.post("/orgs/acme/members/owner/remove/", follow=True)
    assert "Only an owner may change or remove an owner." in remove.content.decode()
    assert state(tenant) == before


def test_last_owner_cannot_be_demoted_or_removed(as_caller, users, tenant):
    before = state(tenant)
    client = as_caller("owner")
    for response in (
        client.post("/orgs/acme/members/owner/role/", {"role": "admin"}, follow=True),
        client.post("/orgs/acme/members/owner/remove/", follow=True),
    ):
        assert "&#x27;owner&#x27; is the last owner of &#x27;acme&#x27;" in response.content.decode()
    assert state(tenant) == before
    # With a second owner, the first may step down.
    client.post("/orgs/acme/members/acme-admin/role/", {"role": "owner"})
    client.post("/orgs/acme/members/owner/role/", {"role": "admin"})
    assert Membership.objects.get(tenant=tenant, user__username="owner").role == "admin"


def test_bad_role_and_unknown_member(as_caller, users, tenant):
    before = state(tenant)
    client = as_caller("owner")
    assert (
        "Choose one of the roles offered."
        in client.post("/orgs/acme/members/acme-reader/role/", {"role": "emperor"}, follow=True).content.decode()
    )
    gone = client.post("/orgs/acme/members/nobody/remove/", follow=True).content.decode()
    assert "&#x27;nobody&#x27; is not a member of &#x27;acme&#x27;." in gone
    assert state(tenant) == before


@pytest.mark.parametrize("caller", ROLE_CALLERS)
def test_remove_refused_changes_nothing(as_caller, users, tenant, caller):
    before = state(tenant)
    assert_denied(as_caller(caller).post("/orgs/acme/members/acme-writer/remove/"), caller)
    assert state(tenant) == before


@pytest.mark.parametrize("caller", ADMINS)
def test_remove_by_admins(as_caller, users, tenant, caller):
    response = as_caller(caller).post("/orgs/acme/members/acme-writer/remove/")
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/members/"
    assert not Membership.objects.filter(tenant=tenant, user__username="acme-writer").exists()
    assert AuditEvent.objects.filter(action="membership.remove", target="acme-writer", actor=users[caller].username).exists()


def test_get_on_a_post_only_url_changes_nothing(as_caller, users, tenant):
    before = state(tenant)
    assert as_caller("owner").get("/orgs/acme/members/acme-writer/remove/").status_code == 405
    assert state(tenant) == before


# --- inviting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ROLE_CALLERS)
def test_invite_refused_changes_nothing(as_caller, users, tenant, caller, mailoutbox):
    before = state(tenant)
    assert_denied(as_caller(caller).post("/orgs/acme/members/invite/", {"email": "ivy@example.com", "role": "reader"}), caller)
    assert state(tenant) == before and mailoutbox == []


@pytest.mark.parametrize("caller", ADMINS)
def test_invite_mails_and_shows_the_link_once(as_caller, users, tenant, caller, mailoutbox, django_capture_on_commit_callbacks):
    client = as_caller(caller)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/orgs/acme/members/invite/", {"email": "Ivy@Example.com", "role": "writer"})
    assert response.status_code == 302
    invitation = Invitation.objects.get(tenant=tenant, email="ivy@example.com")
    assert invitation.role == "writer" and invitation.invited_by == users[caller]
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ivy@example.com"]
    link = next(line for line in mailoutbox[0].body.split() if "/invitations/wharf_inv_" in line)
    page = client.get("/orgs/acme/members/").content.decode()
    assert link in page and 'data-copy="#invite-link"' in page
    assert link not in client.get("/orgs/acme/members/").content.decode()  # shown once
    # The link is the dashboard's invitation page.
    assert link.split("/invitations/")[1].rstrip("/").startswith("wharf_inv_")


def test_invite_bad_input_says_why_and_changes_nothing(as_caller, users, tenant, mailoutbox):
    before = state(tenant)
    client = as_caller("admin")
    cases = [
        ({"email": "not-an-email", "role": "reader"}, "Enter a valid email address."),
        ({"email": "x@example.com", "role": "emperor"}, "Select a valid choice."),
        ({"email": "x@example.com", "role": "owner"}, "Select a valid choice."),  # only owners invite owners
        (
            {"email": "acme-writer@example.com", "role": "reader"},
            "acme-writer@example.com is already a member of &#x27;acme&#x27;.",
        ),
    ]
    for data, message in cases:
        response = client.post("/orgs/acme/members/invite/", data)
        assert response.status_code == 400 and message in response.content.decode(), data
    assert state(tenant) == before and mailoutbox == []


@pytest.mark.parametrize("caller", ROLE_CALLERS)
def test_revoke_invitation_refused_changes_nothing(as_caller, users, tenant, caller):
    issued = invite(tenant)
    before = state(tenant)
    assert_denied(as_caller(caller).post(f"/orgs/acme/invitations/{issued.invitation.pk}/revoke/"), caller)
    assert state(tenant) == before


@pytest.mark.parametrize("caller", ADMINS)
def test_revoke_invitation(as_caller, users, tenant, caller):
    issued = invite(tenant)
    response = as_caller(caller).post(f"/orgs/acme/invitations/{issued.invitation.pk}/revoke/", follow=True)
    assert "Invitation revoked." in response.content.decode()
    assert Invitation.objects.get(pk=issued.invitation.pk).status() == "revoked"
    assert b"ivy@example.com" not in response.content  # no longer pending


def test_revoking_another_organisations_invitation_is_refused(as_caller, users, tenant):
    from accounts.models import Tenant

    globex = Tenant.objects.get(slug="globex")
    foreign = invitation_create(tenant=globex, email="ivy@example.com", role=R.READER, by_role=R.OWNER)
    before = AuditEvent.objects.count()
    response = as_caller("owner").post(f"/orgs/acme/invitations/{foreign.invitation.pk}/revoke/", follow=True)
    assert f"no invitation {foreign.invitation.pk}" in response.content.decode()
    assert Invitation.objects.get(pk=foreign.invitation.pk).status() == "pending" and AuditEvent.objects.count() == before


# --- accepting -----------------------------------------------------------------------------------------


@pytest.fixture
def ivy(tenant):
    return UserFactory(username="ivy", email="ivy@example.com")


def ivy_client(ivy):
    from django.test import Client

    client = Client()
    client.force_login(ivy, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_invitation_page_anonymous_goes_to_login_and_back(tenant, client):
    issued = invite(tenant)
    response = client.get(f"/invitations/{issued.token}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/invitations/{issued.token}/"
    before = state(tenant)
    assert client.post(f"/invitations/{issued.token}/", {"action": "accept"}).status_code == 302
    assert state(tenant) == before


def test_invitation_accept(tenant, ivy):
    issued = invite(tenant)
    client = ivy_client(ivy)
    page = client.get(f"/invitations/{issued.token}/").content.decode()
    assert "acme" in page and "writer" in page and "owner invited you" in page
    response = client.post(f"/invitations/{issued.token}/", {"action": "accept"})
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/"
    assert Membership.objects.get(tenant=tenant, user=ivy).role == "writer"
    assert AuditEvent.objects.filter(action="invitation.accept", actor="ivy").exists()
    again = client.get(f"/invitations/{issued.token}/")
    assert again.status_code == 410 and "This invitation is accepted; ask for a new one." in again.content.decode()


def test_invitation_decline(tenant, ivy):
    issued = invite(tenant)
    response = ivy_client(ivy).post(f"/invitations/{issued.token}/", {"action": "decline"}, follow=True)
    assert "You declined the invitation to acme." in response.content.decode()
    assert not Membership.objects.filter(tenant=tenant, user=ivy).exists()
    assert Invitation.objects.get(pk=issued.invitation.pk).status() == "revoked"
    assert AuditEvent.objects.filter(action="invitation.decline", actor="ivy").exists()


def test_invitation_with_another_email_is_refused(tenant, users):
    issued = invite(tenant)
    before = state(tenant)
    client = ivy_client(UserFactory(username="mallory", email="mallory@example.com"))
    page = client.get(f"/invitations/{issued.token}/")
    assert page.status_code == 404 and "No such invitation for your email address." in page.content.decode()
    assert "acme" not in page.content.decode().split("<main")[1]  # nothing about the invitation leaks
    for action in ("accept", "decline"):
        refused = client.post(f"/invitations/{issued.token}/", {"action": action})
        assert refused.status_code == 404 and "No such invitation for your email address." in refused.content.decode()
    assert state(tenant) == before


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_ended_invitation_says_so(tenant, ivy, ended):
    issued = invite(tenant)
    if ended == "revoked":
        invitation_revoke(tenant=tenant, invitation_id=issued.invitation.pk)
    else:
        Invitation.objects.filter(pk=issued.invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    before = state(tenant)
    client = ivy_client(ivy)
    page = client.get(f"/invitations/{issued.token}/")
    assert page.status_code == 410 and f"This invitation is {ended}; ask for a new one." in page.content.decode()
    post = client.post(f"/invitations/{issued.token}/", {"action": "accept"})
    assert post.status_code == 410 and f"This invitation is {ended}" in post.content.decode()
    assert state(tenant) == before


def test_forged_token_is_404(ivy, tenant):
    response = ivy_client(ivy).get("/invitations/wharf_inv_forged/")
    assert response.status_code == 404 and "No such invitation for your email address." in response.content.decode()


def test_pending_invitations_listed_on_orgs_and_accepted_there(tenant, ivy):
    issued = invite(tenant)
    client = ivy_client(ivy)
    home = client.get("/orgs/").content.decode()
    assert "Invitations for you" in home and f"/invitations/{issued.invitation.pk}/respond/" in home
    response = client.post(f"/invitations/{issued.invitation.pk}/respond/", {"action": "accept"})
    assert response["Location"] == "/orgs/acme/"
    assert Membership.objects.get(tenant=tenant, user=ivy).role == "writer"
    assert "Invitations for you" not in client.get("/orgs/").content.decode()


def test_respond_by_id_to_someone_elses_invitation_changes_nothing(tenant, users):
    issued = invite(tenant)
    before = state(tenant)
    response = ivy_client(users["other"]).post(f"/invitations/{issued.invitation.pk}/respond/", {"action": "accept"})
    assert response.status_code == 404
    assert state(tenant) == before


def test_respond_without_action_changes_nothing(tenant, ivy):
    issued = invite(tenant)
    before = state(tenant)
    response = ivy_client(ivy).post(f"/invitations/{issued.token}/", {"action": "maybe"}, follow=True)
    assert "Choose Accept or Decline." in response.content.decode()
    assert state(tenant) == before
