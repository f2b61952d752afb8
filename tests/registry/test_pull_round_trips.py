"""What a manifest request costs in Redis (docs/decisions/0047, 0054): one round trip for a limited tenant's GET (the
window script, which also queues the pull's event); none for an unlimited tenant's, whose event's RPUSH is written
without waiting for a reply (a ReplylessSender); nothing at all for an unlimited HEAD.

Round trips are counted where redis-py writes to the socket (a pipeline would be one write, one round trip),
with the command each carried, in this process, where the Django test client runs the whole request; writes on a
replyless connection are listed apart (`round_trips.unanswered`): nothing waits for them.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
import redis

from gateway.core import redis as core_redis
from gateway.registry import pull_limits
from gateway.registry.media_types import OCI_INDEX
from gateway.registry.pull_limits import KEY_PREFIX
from gateway.registry.services import events
from tests.registry.test_pull_limits import T0, _limits, _remaining

OCI = "application/vnd.oci.image.manifest.v1+json"
_COMMAND = re.compile(rb"^\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


@pytest.fixture
def round_trips(monkeypatch):
    """The Redis commands sent from now on, one entry a socket write (a round trip): `round_trips.during(fn)`."""

    class Trips:
        sent: list[list[str]] = []
        unanswered: list[list[str]] = []

        def during(self, fn):
            self.sent, self.unanswered = [], []
            result = fn()
            return result, self.sent

    trips = Trips()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        packed = command if isinstance(command, bytes) else b"".join(command)
        names = [m.group(1).decode().upper() for m in _COMMAND.finditer(packed)] or ["?"]
        replyless = any(self is sender._connection for sender in core_redis._senders.values())
        (trips.unanswered if replyless else trips.sent).append(names)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return trips


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(pull_limits, "_now", lambda: T0)


@pytest.fixture
def image(reg):
    digest, _ = reg.push_image("app", "v1", [b"layer-one"])
    return digest


def _queued(redis_client) -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(events.QUEUE_KEY, 0, -1)]


def _window(redis_client, tenant) -> int:
    return int(redis_client.zcard(f"{KEY_PREFIX}{tenant.pk}:tenant"))


def test_a_limited_tenants_counted_get_is_one_round_trip_that_also_queues_its_event(
    reg, tenant, image, clock, event_stream, redis_client, round_trips
):
    _limits(tenant, authenticated=5)
    reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)  # credentials checked and cached, the script loaded
    redis_client.delete(events.QUEUE_KEY)
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert r.status_code == 200 and _remaining(r) == 3
    assert sent == [["EVALSHA"]]
    [event] = _queued(redis_client)
    # The same line events.record writes (one format): what the flush parses and billing meters.
    assert {k: v for k, v in event.items() if k != "ts"} == {
        "t": tenant.pk,
        "r": "app",
        "d": image,
        "b": int(r["Content-Length"]),
        "k": "manifest",
        "dir": "pull",
        "m": "proxied",
        "ref": "v1",
        "mt": OCI,
    }
    assert _window(redis_client, tenant) == 2


def test_an_unlimited_tenants_get_waits_for_no_reply_and_its_head_costs_nothing(
    reg, tenant, image, event_stream, redis_client, round_trips
):
    _limits(tenant, authenticated=None, anonymous=3)  # members unlimited
    reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
    redis_client.delete(events.QUEUE_KEY)
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert r.status_code == 200 and "RateLimit-Limit" not in r
    assert sent == [] and round_trips.unanswered == [["RPUSH"]]  # written, not waited for
    assert [e["ref"] for e in _queued(redis_client)] == ["v1"]
    r, sent = round_trips.during(lambda: reg.head("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert r.status_code == 200 and sent == []
    assert len(_queued(redis_client)) == 1


def test_head_and_an_index_get_read_the_window_in_one_round_trip_and_count_nothing(
    reg, tenant, clock, event_stream, redis_client, round_trips
):
    digest, payload = reg.push_image("multi", "amd64", [b"amd"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI, "digest": digest, "size": len(payload)}],
    }
    assert reg.push_manifest("multi", "latest", index).status_code == 201
    _limits(tenant, authenticated=2)
    reg.get(f"/v2/acme/multi/manifests/{digest}", HTTP_ACCEPT=OCI)  # one pull counts
    reg.head("/v2/acme/multi/manifests/latest")
    redis_client.delete(events.QUEUE_KEY)
    r, sent = round_trips.during(lambda: reg.head("/v2/acme/multi/manifests/latest"))
    assert (r.status_code, _remaining(r), sent) == (200, 1, [["EVALSHA"]])
    assert _queued(redis_client) == []  # a HEAD is no event
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/multi/manifests/latest", HTTP_ACCEPT=OCI_INDEX))
    assert (r.status_code, _remaining(r), sent) == (200, 1, [["EVALSHA"]])
    # The index GET is an event (egress; billing does not count it as a pull), queued by the same script.
    assert [(e["ref"], e["mt"]) for e in _queued(redis_client)] == [("latest", OCI_INDEX)]
    assert _window(redis_client, tenant) == 1


def test_a_refused_pull_is_one_round_trip_and_queues_no_event(reg, tenant, image, clock, event_stream, redis_client, round_trips):
    _limits(tenant, authenticated=1)
    assert reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    redis_client.delete(events.QUEUE_KEY)
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert (r.status_code, sent) == (429, [["EVALSHA"]])
    assert _queued(redis_client) == [] and _window(redis_client, tenant) == 1


def test_with_recording_off_nothing_is_queued_and_the_limit_still_holds(
    reg, tenant, image, clock, event_stream, redis_client, round_trips, settings
):
    """GATEWAY_EVENTS_RECORD=false (the benchmark's baseline only): no event, no RPUSH; a limit is still counted."""
    settings.GATEWAY_EVENTS_RECORD = False
    reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert (r.status_code, sent) == (200, [])
    _limits(tenant, authenticated=5)
    r, sent = round_trips.during(lambda: reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI))
    assert (r.status_code, _remaining(r), sent) == (200, 4, [["EVALSHA"]])
    assert _queued(redis_client) == []


def test_redis_down_serves_the_pull_and_logs_both_the_limiter_and_the_lost_event(
    reg, tenant, image, settings, caplog, monkeypatch, round_trips
):
    _limits(tenant, authenticated=1)
    reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(pull_limits._fail_open, "_last", -1e9)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            r = reg.get("/v2/acme/app/manifests/v1", HTTP_ACCEPT=OCI)
            assert r.status_code == 200 and "RateLimit-Limit" not in r
    assert caplog.text.count("pull rate limiting unavailable") == 1  # at most every 30 s
    dropped = [rec for rec in caplog.records if rec.getMessage().startswith("usage event dropped")]
    assert len(dropped) == 2 and json.loads(dropped[0].event)["ref"] == "v1"  # type: ignore[attr-defined]
