"""Organisation settings (/orgs/<slug>/settings/): display name and download mode (admins, owners), deletion (owners)."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, Tenant
from gateway.registry.models import JobRun
from gateway.registry.services.tenant_delete import KIND_TENANT_DELETE
from tests.dashboard.conftest import CALLERS, assert_denied

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/settings/"
DELETE_URL = "/orgs/acme/settings/delete/"


def _state() -> dict:
    """Everything a settings POST could change: the tenant row, its audit events, its jobs."""
    tenant = Tenant.objects.get(slug="acme")
    return {
        "tenant": (tenant.name, tenant.redirect_blob_downloads, tenant.status, tenant.updated_at),
        "audit": list(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "jobs": list(JobRun.objects.order_by("pk").values_list("pk", flat=True)),
    }


@pytest.mark.parametrize("caller", CALLERS)
def test_settings_page_access(as_caller, caller):
    response = as_caller(caller).get(URL)
    if caller in ("admin", "owner"):
        assert response.status_code == 200
        assert b'name="download_mode"' in response.content
        # Only the owner sees the deletion form.
        assert (b'id="delete-form"' in response.content) == (caller == "owner")
    else:
        assert_denied(response, caller)


@pytest.mark.parametrize("caller", CALLERS)
def test_settings_post_access_and_nothing_changed_on_denial(as_caller, caller):
    before = _state()
    response = as_caller(caller).post(URL, {"name": "Acme Corp", "download_mode": "redirect"})
    if caller in ("admin", "owner"):
        assert response.status_code == 302 and response["Location"] == URL
        tenant = Tenant.objects.get(slug="acme")
        assert (tenant.name, tenant.redirect_blob_downloads) == ("Acme Corp", True)
    else:
        assert_denied(response, caller)
        assert _state() == before


@pytest.mark.parametrize("caller", CALLERS)
def test_delete_post_is_for_owners_only_and_nothing_changed_on_denial(as_caller, caller, django_capture_on_commit_callbacks):
    before = _state()
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_caller(caller).post(DELETE_URL, {"confirm": "acme"})
    if caller == "owner":
        assert response.status_code == 302 and response["Location"] == "/orgs/"
        assert Tenant.objects.get(slug="acme").status == Tenant.Status.DELETING
        assert len(callbacks) == 1  # the purge is queued after commit
    else:
        assert_denied(response, caller)
        assert _state() == before and not callbacks


def test_update_saves_audits_and_says_so(as_caller):
    client = as_caller("admin")
    response = client.post(URL, {"name": "  Acme Corp  ", "download_mode": "redirect"}, follow=True)
    assert b"Settings saved." in response.content
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Corp" and tenant.redirect_blob_downloads is True
    event = AuditEvent.objects.filter(tenant=tenant, action="tenant.update").latest("pk")
    assert event.actor == "acme-admin" and event.detail == {"name": "Acme Corp", "redirect_blob_downloads": True}
    page = client.get(URL).content
    assert b'value="redirect" checked' in page and b'value="Acme Corp"' in page
    # Back to proxied: the radio button moves, one more audit event.
    client.post(URL, {"name": "Acme Corp", "download_mode": "proxied"})
    assert Tenant.objects.get(slug="acme").redirect_blob_downloads is False
    assert b'value="proxied" checked' in client.get(URL).content


def test_each_download_mode_is_explained(as_caller):
    page = as_caller("owner").get(URL).content
    assert (
        b"Proxied: layers stream through Wharf" in page and b"Redirected: clients are sent to a short-lived signed link" in page
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "download_mode": "proxied"}, b"This field is required."),
        ({"name": "   ", "download_mode": "proxied"}, b"This field is required."),
        ({"name": "x" * 201, "download_mode": "proxied"}, b"Ensure this value has at most 200 characters"),
        ({"name": "Acme", "download_mode": "teleport"}, b"Select a valid choice."),
        ({"name": "Acme"}, b"This field is required."),
        ({"name": "bad\x00name", "download_mode": "proxied"}, b"Null characters are not allowed."),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(as_caller, data, message):
    before = _state()
    response = as_caller("owner").post(URL, data)
    assert response.status_code == 400 and message in response.content
    assert _state() == before


@pytest.mark.parametrize("typed", ["", "ACME", "acm", "globex", "acme-"])
def test_a_wrong_typed_slug_refuses_deletion(as_caller, typed, django_capture_on_commit_callbacks):
    before = _state()
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_caller("owner").post(DELETE_URL, {"confirm": typed})
    assert response.status_code == 400
    assert b"nothing was deleted" in response.content or b"This field is required." in response.content
    assert _state() == before and not callbacks


def test_delete_starts_the_apis_job_and_sends_the_owner_to_their_organisations(as_caller, django_capture_on_commit_callbacks):
    client = as_caller("owner")
    tenant = Tenant.objects.get(slug="acme")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(DELETE_URL, {"confirm": " acme "}, follow=True)
    assert response.redirect_chain == [("/orgs/", 302)]
    assert b"Deleting acme" in response.content
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.DELETING
    job = JobRun.objects.get(kind=KIND_TENANT_DELETE, tenant=tenant)
    assert job.state == JobRun.State.RUNNING and len(callbacks) == 1
    audit = AuditEvent.objects.filter(tenant=tenant, action="tenant.delete").get()
    assert audit.actor == "owner" and audit.detail == {"previous": "active"}
    # The organisation is gone from the dashboard at once, for every member.
    assert client.get("/orgs/acme/").status_code == 404
    assert client.get(URL).status_code == 404
    assert b"/orgs/acme/" not in client.get("/orgs/").content


def test_get_of_the_delete_url_changes_nothing(as_caller):
    before = _state()
    response = as_caller("owner").get(DELETE_URL)
    assert response.status_code == 302 and response["Location"] == URL
    assert _state() == before
