"""Invitations: a tenant's side (list, create, revoke) and the invitee's (list mine, accept by id or token); the access matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.invitations import invitation_create
from accounts.models import AuditEvent, Invitation, Membership
from accounts.secrets import hash_secret
from tests.api.callers import caller
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import UserFactory, make_member, make_tenant

R = Membership.Role
BASE = "/api/v1/tenants/acme/invitations"


def rows() -> dict[str, list]:
    """snapshot() plus every invitation's state."""
    fields = ("pk", "tenant_id", "email", "role", "token_hash", "accepted_at", "revoked_at", "expires_at")
    return {**snapshot(), "invitations": list(Invitation.objects.order_by("pk").values(*fields))}


def _as(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"u-{role}"), scopes))


def _invite(tenant, email="new@example.com", role=R.WRITER):
    return invitation_create(tenant=tenant, email=email, role=role, by_role=R.OWNER)


@pytest.fixture
def invitee(db):
    return UserFactory(username="ivy", email="ivy@example.com")


@pytest.fixture
def ivy(invitee) -> Api:
    return Api(token(invitee, ["api:read", "api:write"]))


# --- the tenant's side ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_mails_the_token_once_and_keeps_its_hash(acme, api_write, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_write.post(BASE, {"email": "New@Example.com", "role": "writer"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "new@example.com" and body["role"] == "writer" and body["status"] == "pending"
    assert body["invited_by"] == "olivia" and body["token"].startswith("wharf_inv_")
    invitation = Invitation.objects.get(pk=body["id"])
    assert invitation.token_hash == hash_secret(body["token"]) and body["token"] not in str(Invitation.objects.values().get())
    assert abs(invitation.expires_at - invitation.created_at - timedelta(days=7)) < timedelta(seconds=5)
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new@example.com"] and body["token"] in mailoutbox[0].body
    assert AuditEvent.objects.filter(action="invitation.create", target="new@example.com", actor="olivia").exists()
    assert "token" not in api_write.get(BASE).json()["results"][0]


@pytest.mark.django_db
def test_inviting_a_pending_address_again_replaces_the_invitation(acme, api_write, invitee, ivy):
    first = api_write.post(BASE, {"email": "ivy@example.com", "role": "reader"}).json()
    second = api_write.post(BASE, {"email": "ivy@example.com", "role": "admin"})
    assert second.status_code == 201, second.content
    assert Invitation.objects.get(pk=first["id"]).status() == "revoked"
    assert_problem(ivy.post("/api/v1/invitations/accept", {"token": first["token"]}), 410)
    assert ivy.post("/api/v1/invitations/accept", {"token": second.json()["token"]}).json()["role"] == "admin"


@pytest.mark.django_db
def test_inviting_a_member_409_and_only_owners_invite_owners(acme, reader):
    admin = _as(acme, R.ADMIN)
    before = rows()
    assert_problem(admin.post(BASE, {"email": "rita@example.com", "role": "writer"}), 409)
    assert_problem(admin.post(BASE, {"email": "RITA@example.com", "role": "writer"}), 409)
    assert_problem(admin.post(BASE, {"email": "boss@example.com", "role": "owner"}), 403)
    assert rows() == before
    assert admin.post(BASE, {"email": "boss@example.com", "role": "admin"}).status_code == 201
    owner = Api(token(acme.memberships.get(role=R.OWNER).user, ["api:write"]))
    assert owner.post(BASE, {"email": "boss@example.com", "role": "owner"}).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "fields"),
    [({}, ["email", "role"]), ({"email": "nope", "role": "writer"}, ["email"]), ({"email": "a@b.co", "role": "god"}, ["role"])],
)
def test_create_validation_names_the_fields(acme, api_write, payload, fields):
    before = rows()
    problem = assert_problem(api_write.post(BASE, payload), 400)
    assert sorted(e["field"] for e in problem["errors"]) == fields
    assert rows() == before


@pytest.mark.django_db
def test_list_filters_by_status_and_pages(acme, api_read):
    pending = _invite(acme, "p@example.com").invitation
    revoked = _invite(acme, "r@example.com").invitation
    Invitation.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    expired = _invite(acme, "e@example.com").invitation
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _invite(make_tenant("globex"), "p@example.com")  # another tenant's: never listed
    everything = api_read.get(BASE).json()["results"]
    assert [(i["email"], i["status"]) for i in everything] == [
        ("e@example.com", "expired"),
        ("r@example.com", "revoked"),
        ("p@example.com", "pending"),
    ]
    for status, pk in (("pending", pending.pk), ("revoked", revoked.pk), ("expired", expired.pk)):
        assert [i["id"] for i in api_read.get(BASE, status=status).json()["results"]] == [pk]
    assert api_read.get(BASE, status="accepted").json()["results"] == []
    problem = assert_problem(api_read.get(BASE, status="lost"), 400)
    assert problem["errors"][0]["field"] == "status"
    page = api_read.get(BASE, limit=2).json()
    assert len(page["results"]) == 2 and page["next"]


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(acme, api_read, django_assert_max_num_queries):
    for i in range(30):
        _invite(acme, f"i{i}@example.com")
    with django_assert_max_num_queries(6):
        assert len(api_read.get(BASE, limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(6):
        assert len(api_read.get(BASE, limit=30, status="pending").json()["results"]) == 30


@pytest.mark.django_db
def test_revoke_is_audited_idempotent_and_scoped_to_the_tenant(acme, api_write, invitee, ivy):
    issued = _invite(acme, "ivy@example.com")
    other = _invite(make_tenant("globex"), "ivy@example.com").invitation
    assert api_write.delete(f"{BASE}/{issued.invitation.pk}").status_code == 204
    assert AuditEvent.objects.filter(action="invitation.revoke", target="ivy@example.com").count() == 1
    assert api_write.delete(f"{BASE}/{issued.invitation.pk}").status_code == 204
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1
    before = rows()
    assert_problem(api_write.delete(f"{BASE}/{other.pk}"), 404)
    assert_problem(api_write.delete(f"{BASE}/999999"), 404)
    assert rows() == before
    assert_problem(ivy.post(f"/api/v1/user/invitations/{issued.invitation.pk}/accept"), 410)


# --- the invitee's side -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_my_invitations_are_the_pending_ones_to_my_email(acme, invitee, ivy):
    mine = _invite(acme, "IVY@example.com", role=R.READER).invitation
    _invite(acme, "someone@example.com")
    gone = _invite(make_tenant("globex"), "ivy@example.com").invitation
    Invitation.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    body = ivy.get("/api/v1/user/invitations").json()
    assert [(i["id"], i["tenant"], i["role"], i["invited_by"]) for i in body["results"]] == [(mine.pk, "acme", "reader", None)]


@pytest.mark.django_db
def test_my_invitations_query_count_is_constant(acme, invitee, ivy, django_assert_max_num_queries):
    for i in range(25):
        _invite(make_tenant(f"t{i:02d}"), "ivy@example.com")
    with django_assert_max_num_queries(5):
        assert len(ivy.get("/api/v1/user/invitations", limit=2).json()["results"]) == 2
    with django_assert_max_num_queries(5):
        assert len(ivy.get("/api/v1/user/invitations", limit=25).json()["results"]) == 25


@pytest.mark.django_db
def test_accept_by_id_joins_once_with_the_invited_role(acme, invitee, ivy):
    invitation = _invite(acme, "ivy@example.com", role=R.ADMIN).invitation
    response = ivy.post(f"/api/v1/user/invitations/{invitation.pk}/accept")
    assert response.status_code == 200, response.content
    assert response.json()["tenant"] == "acme" and response.json()["role"] == "admin"
    assert Membership.objects.get(tenant=acme, user=invitee).role == "admin"
    invitation.refresh_from_db()
    assert invitation.status() == "accepted" and invitation.accepted_by == invitee
    assert AuditEvent.objects.filter(action="invitation.accept", target="ivy", tenant=acme).exists()
    before = rows()
    assert_problem(ivy.post(f"/api/v1/user/invitations/{invitation.pk}/accept"), 410)
    assert rows() == before
    assert ivy.get("/api/v1/tenants/acme").json()["role"] == "admin"


@pytest.mark.django_db
def test_accept_by_token(acme, invitee, ivy):
    issued = _invite(acme, "ivy@example.com")
    response = ivy.post("/api/v1/invitations/accept", {"token": issued.token})
    assert response.status_code == 200, response.content
    assert Membership.objects.get(tenant=acme, user=invitee).role == "writer"
    assert_problem(ivy.post("/api/v1/invitations/accept", {"token": issued.token}), 410)


@pytest.mark.django_db
def test_accept_refusals(acme, invitee, ivy, reader):
    expired = _invite(acme, "ivy@example.com").invitation
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    someone_elses = _invite(make_tenant("globex"), "other@example.com")
    for_a_member = _invite(make_tenant("initech"), "ivy@example.com").invitation
    make_member(for_a_member.tenant, R.READER, username="ivy")
    before = rows()
    assert_problem(ivy.post(f"/api/v1/user/invitations/{expired.pk}/accept"), 410)
    assert_problem(ivy.post(f"/api/v1/user/invitations/{someone_elses.invitation.pk}/accept"), 404)
    assert_problem(ivy.post("/api/v1/invitations/accept", {"token": someone_elses.token}), 404)
    assert_problem(ivy.post("/api/v1/invitations/accept", {"token": "wharf_inv_forged"}), 404)
    assert_problem(ivy.post("/api/v1/user/invitations/999999/accept"), 404)
    assert_problem(ivy.post(f"/api/v1/user/invitations/{for_a_member.pk}/accept"), 409)
    problem = assert_problem(ivy.post("/api/v1/invitations/accept", {}), 400)
    assert problem["errors"][0]["field"] == "token"
    assert rows() == before


@pytest.mark.django_db
def test_a_user_without_an_email_has_no_invitations(acme):
    api = Api(token(UserFactory(username="noemail", email=""), ["api:read", "api:write"]))
    invitation = _invite(acme, "noemail@example.com").invitation
    assert api.get("/api/v1/user/invitations").json()["results"] == []
    assert_problem(api.post(f"/api/v1/user/invitations/{invitation.pk}/accept"), 404)


# --- the access matrix ------------------------------------------------------------------------------------

TENANT_OPS = [
    ("get", BASE, None),
    ("post", BASE, {"email": "x@example.com", "role": "reader"}),
    ("delete", f"{BASE}/{{id}}", None),
]
TENANT_WRITES = TENANT_OPS[1:]
USER_OPS = [
    ("get", "/api/v1/user/invitations", None),
    ("post", "/api/v1/user/invitations/{id}/accept", None),
    ("post", "/api/v1/invitations/accept", {"token": "{token}"}),
]


@pytest.fixture
def pending(acme):
    return _invite(acme, "ivy@example.com")


def _call(api: Api, method: str, path: str, body, issued):
    path = path.format(id=issued.invitation.pk)
    if body and "token" in body:
        body = {"token": issued.token}
    if method == "get":
        return api.get(path)
    if method == "delete":
        return api.delete(path)
    return api.post(path, body)


# Who calls, and what they get from the tenant's operations and from the invitee's (who: the invitee's own
# client where that is what the row is about). 401 unauthenticated, 403 not allowed, 404 not theirs.
DENIED = [
    ("anonymous", 401, 401),
    ("revoked", 401, 401),
    ("expired", 401, 401),
    ("registry_only", 403, 403),
    ("robot", 403, 403),
    ("reader", 403, None),
    ("writer", 403, None),
    ("outsider", 404, 404),
    ("staff", 404, 404),
    ("owner", None, 404),
]


def _denials() -> list[tuple]:
    """(method, path, body, who, status) of every denied call; listing my invitations is never denied to a user (it is empty)."""
    cases = []
    for who, tenant_status, user_status in DENIED:
        for method, path, body in TENANT_OPS + USER_OPS:
            status = tenant_status if path.startswith(BASE) else user_status
            if status is not None and not (status == 404 and path == "/api/v1/user/invitations"):
                cases.append((method, path, body, who, status))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "who", "status"), _denials())
def test_denied_calls_change_nothing(request, acme, pending, method, path, body, who, status):
    api = caller(request, acme, who)
    before = rows()
    assert_problem(_call(api, method, path, body, pending), status)
    assert rows() == before
    if status == 404:
        assert api.get("/api/v1/user/invitations").json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), TENANT_WRITES + USER_OPS[1:])
def test_api_read_cannot_write_403(acme, pending, invitee, method, path, body):
    user = invitee if not path.startswith(BASE) else acme.memberships.get(role=R.OWNER).user
    api = Api(token(user, ["api:read"]))
    before = rows()
    assert_problem(_call(api, method, path, body, pending), 403)
    assert rows() == before


@pytest.mark.django_db
def test_admins_and_owners_may_manage(acme, pending):
    for role in (R.ADMIN, R.OWNER):
        api = _as(acme, role)
        assert api.get(BASE).status_code == 200
        assert api.post(BASE, {"email": f"{role}-guest@example.com", "role": "reader"}).status_code == 201
    assert _as(acme, R.ADMIN).delete(f"{BASE}/{pending.invitation.pk}").status_code == 204


@pytest.mark.django_db(transaction=True)
def test_a_mail_server_that_refuses_loses_no_invitation(acme, owner, settings, caplog):
    """SMTP on a closed port: the invitation is created, its token answered, the failure logged (not a 500)."""
    from accounts.models import Invitation

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    api = Api(token(owner, ["api:read", "api:write"]))
    response = api.post("/api/v1/tenants/acme/invitations", {"email": "new@example.com", "role": "reader"})
    assert response.status_code == 201, response.content
    assert response.json()["token"]
    assert Invitation.objects.filter(tenant=acme, email="new@example.com").exists()
    assert "could not be sent" in caplog.text
