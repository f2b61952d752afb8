"""The audit log: audit_record writes inside the caller's transaction; audit_list reads per tenant."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.selectors import audit_list
from accounts.services import audit_record, membership_set
from tests.factories import UserFactory, make_tenant

pytestmark = pytest.mark.django_db


def test_record_stores_the_event():
    acme = make_tenant("acme")
    audit_record(
        action="manifest.push",
        actor="alice",
        tenant=acme,
        target="app@sha256:abc",
        ip="192.0.2.1",
        user_agent="docker/27",
        detail={"tag": "1", "at": timezone.now()},
    )
    event = AuditEvent.objects.get()
    assert (event.tenant_id, event.actor, event.action, event.target, event.ip, event.user_agent, event.success) == (
        acme.pk,
        "alice",
        "manifest.push",
        "app@sha256:abc",
        "192.0.2.1",
        "docker/27",
        True,
    )
    assert event.detail["tag"] == "1" and isinstance(event.detail["at"], str)
    assert abs((event.created_at - timezone.now()).total_seconds()) < 5


def test_record_normalises_what_callers_pass():
    audit_record(action="login.failed", actor="", ip="unknown", user_agent="x" * 1000, success=False, target="t" * 900)
    audit_record(action="login", actor="bob", ip="::ffff:192.0.2.1 ")
    failed, ok = AuditEvent.objects.order_by("pk")
    assert failed.actor == "system" and failed.ip is None and len(failed.user_agent) == 300 and len(failed.target) == 500
    assert failed.success is False and failed.detail == {}
    assert ok.ip == "::ffff:192.0.2.1"


@pytest.mark.parametrize("action", ["", "   ", "x" * 65])
def test_record_needs_an_action(action):
    with pytest.raises(ValueError, match="audit action"):
        audit_record(action=action, actor="a")


def test_record_rolls_back_with_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="robot.create", actor="a")
        raise RuntimeError("the caller failed")
    assert not AuditEvent.objects.exists()


def test_list_is_per_tenant_newest_first_and_filtered():
    acme, beta = make_tenant("acme"), make_tenant("beta")
    audit_record(action="login", actor="alice")
    for i in range(3):
        audit_record(action="manifest.push", actor="alice", tenant=acme, target=f"app:{i}")
    audit_record(action="blob.delete", actor="alice", tenant=acme, target="app@x")
    audit_record(action="manifest.push", actor="bob", tenant=beta, target="web:1")
    old = AuditEvent.objects.get(target="app:0")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert [e.target for e in audit_list(tenant=acme)] == ["app@x", "app:2", "app:1", "app:0"]
    assert [e.target for e in audit_list(tenant=beta)] == ["web:1"]
    assert [e.action for e in audit_list(tenant=None)] == ["login"]  # only events of no tenant
    assert [e.target for e in audit_list(tenant=acme, action="manifest.push")] == ["app:2", "app:1", "app:0"]
    assert [e.target for e in audit_list(tenant=acme, since=timezone.now() - timedelta(days=1))] == ["app@x", "app:2", "app:1"]
    assert [e.target for e in audit_list(tenant=acme, limit=2)] == ["app@x", "app:2"]
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            audit_list(tenant=acme, limit=bad)


def test_membership_changes_are_audited_once_per_change():
    acme = make_tenant("acme")
    user = UserFactory(username="carol")
    membership_set(tenant=acme, user=user, role="reader", actor="alice")
    membership_set(tenant=acme, user=user, role="reader", actor="alice")  # no change, no event
    membership_set(tenant=acme, user=user, role="writer")
    events = audit_list(tenant=acme, action="membership.set")
    assert [(e.actor, e.target, e.detail) for e in events] == [
        ("system", "carol", {"role": "writer", "previous": "reader"}),
        ("alice", "carol", {"role": "reader", "previous": None}),
    ]
