"""The registry's event stream: subscribers get every event once, in order, inside the flush's transaction.

Real Redis and PostgreSQL; pushes and pulls through /v2/.
"""

from __future__ import annotations

import pytest
from django.db import connection

from gateway.registry.models import EventBatch, UsageEvent
from gateway.registry.services import events, stream
from tests.helpers import sha

OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def seen(monkeypatch):
    """A subscriber to every event type, for this test only; the list of what it received, per batch."""
    got: list[tuple] = []

    def handler(*, batch, events):
        got.append((batch, list(events)))

    monkeypatch.setitem(events._subscriptions, "test", events.Subscription(name="test", types=stream_types(), handler=handler))
    return got


def stream_types() -> frozenset:
    return frozenset((k, d) for k in events.KINDS for d in events.DIRECTIONS)


def test_the_registry_replication_and_billing_subscribe_at_start_and_usage_comes_first():
    names = [s.name for s in events.subscriptions()]
    assert names[0] == "usage" and {"replication", "billing"} <= set(names)


def test_subscribe_refuses_unknown_types():
    for bad in (set(), {("layer", "push")}, {("blob", "copy")}):
        with pytest.raises(ValueError, match="types must be"):
            events.subscribe(name="bad", types=bad, handler=lambda **_: None)
    assert "bad" not in [s.name for s in events.subscriptions()]


@pytest.mark.django_db
def test_events_arrive_in_the_order_recorded_with_their_fields(reg, tenant, event_stream, seen):
    digest, payload = reg.push_image("app", "1", [b"layer-one"])
    assert reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI).status_code == 200
    assert event_stream() == 4
    [(batch, got)] = seen
    assert EventBatch.objects.filter(pk=batch, events=4).exists()
    assert [(e.kind, e.direction) for e in got] == [
        ("blob", "push"),
        ("blob", "push"),
        ("manifest", "push"),
        ("manifest", "pull"),
    ]
    assert [e.seq for e in got] == [0, 1, 2, 3]
    assert {e.digest for e in got[:2]} == {sha(b"layer-one"), sha(b'{"architecture":"amd64","os":"linux"}')}
    pull = got[3]
    assert (pull.tenant_id, pull.repository, pull.digest, pull.size, pull.reference, pull.mode) == (
        tenant.pk,
        "app",
        digest,
        len(payload),
        "1",
        "proxied",
    )
    assert got[0].occurred_at <= got[3].occurred_at


@pytest.mark.django_db
def test_a_subscriber_only_gets_its_types(reg, event_stream, monkeypatch):
    got: list = []
    monkeypatch.setitem(
        events._subscriptions,
        "pulls",
        events.Subscription(
            name="pulls", types=frozenset({("manifest", "pull")}), handler=lambda *, batch, events: got.extend(events)
        ),
    )
    reg.push_image("app", "1", [b"l"])
    reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT=OCI)
    event_stream()
    assert [(e.kind, e.direction) for e in got] == [("manifest", "pull")]


@pytest.mark.django_db
def test_a_replayed_batch_is_not_delivered_twice(reg, redis_client, event_stream, seen):
    reg.push_image("app", "1", [b"l"])
    raw = redis_client.lrange(events.QUEUE_KEY, 0, -1)
    assert event_stream() == len(raw) == 3
    [(batch, _)] = seen
    # As if the worker died between COMMIT and acknowledging: the same batch is claimed again.
    redis_client.rpush(stream.PROCESSING_KEY, *raw)
    redis_client.set(stream.BATCH_KEY, str(batch))
    assert event_stream() == 3
    assert len(seen) == 1 and redis_client.exists(stream.PROCESSING_KEY) == 0


@pytest.mark.django_db
def test_a_failing_subscriber_rolls_back_every_subscriber_and_the_batch_is_replayed(
    reg, tenant, redis_client, event_stream, monkeypatch
):
    calls: list[int] = []

    def flaky(*, batch, events):
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("subscriber down")

    monkeypatch.setitem(events._subscriptions, "flaky", events.Subscription(name="flaky", types=stream_types(), handler=flaky))
    reg.push_image("app", "1", [b"l"])
    with pytest.raises(RuntimeError):
        event_stream()
    assert UsageEvent.objects.filter(tenant=tenant).count() == 0  # the usage meter ran first, rolled back too
    assert not EventBatch.objects.exists()
    assert redis_client.llen(stream.PROCESSING_KEY) == 3
    assert event_stream() == 3
    assert calls == [3, 3]
    assert UsageEvent.objects.filter(tenant=tenant).count() == 3


@pytest.mark.django_db
def test_subscribers_run_in_the_flush_transaction(reg, event_stream, monkeypatch):
    depth: list[bool] = []
    monkeypatch.setitem(
        events._subscriptions,
        "tx",
        events.Subscription(name="tx", types=stream_types(), handler=lambda **_: depth.append(connection.in_atomic_block)),
    )
    reg.push_image("app", "1", [b"l"])
    event_stream()
    assert depth == [True]


@pytest.mark.django_db
def test_tag_moves_and_deletions_and_manifest_deletions_are_events(reg, tenant, event_stream, seen):
    from gateway.registry.services.retention import retention_apply_to_completion, retention_policy_set

    first, _ = reg.push_image("app", "1", [b"one"])
    reg.push_image("app", "latest", [b"one"])  # a new tag (the manifest push says so): no move
    second, _ = reg.push_image("app", "1", [b"two"])  # "1" moves
    reg.push_image("app", "1", [b"two"])  # pushed again unchanged: not a move
    event_stream()
    tags = [(e.direction, e.reference, e.digest) for _, got in seen for e in got if e.kind == "tag"]
    assert tags == [("push", "1", second)]
    seen.clear()

    assert reg.delete("/v2/acme/app/manifests/latest").status_code == 202  # by tag: only the tag goes
    assert reg.delete(f"/v2/acme/app/manifests/{second}").status_code == 202  # by digest: its tag "1" goes with it
    reg.push_image("app", "old", [b"three"])
    retention_policy_set(tenant=tenant, keep_last=0, keep_regex="^$")
    retention_apply_to_completion(tenant=tenant)
    event_stream()
    got = [(e.kind, e.direction, e.reference, e.digest) for _, batch in seen for e in batch if e.direction == "delete"]
    old = next(e.digest for _, batch in seen for e in batch if e.kind == "manifest" and e.direction == "push")
    assert got == [
        ("tag", "delete", "latest", first),
        ("tag", "delete", "1", second),
        ("manifest", "delete", second, second),
        ("tag", "delete", "old", old),
    ]
