"""Replication's subscription to the registry's event stream: what gets queued for copying, once."""

from __future__ import annotations

import pytest

from gateway.replication.models import ObjectReplica
from gateway.replication.services import replica_replicate
from gateway.replication.tasks import replicate_object_task
from tests.replication.conftest import OCI, layer

pytestmark = pytest.mark.django_db
CONFIG = b'{"architecture":"amd64","os":"linux"}'


def _hooks(callbacks) -> int:
    return len([c for c in callbacks if "replication_enqueue" in getattr(c, "__qualname__", "")])


def test_a_re_push_or_new_tag_of_a_replicated_manifest_queues_nothing_a_new_repository_does(
    reg, replicating, event_stream, django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(replicate_object_task, "delay", lambda *, replica_id: sent.append(replica_id))
    one = layer("one", 1000)
    _, payload = reg.push_image("app", "1", [one])
    with django_capture_on_commit_callbacks(execute=True):
        event_stream()
    assert len(sent) == 3
    for row in ObjectReplica.objects.filter(tenant=replicating):
        assert replica_replicate(replica_id=row.pk) == "replicated"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert reg.push_manifest("app", "1", payload, OCI).status_code == 201
        assert reg.push_manifest("app", "2", payload, OCI).status_code == 201
        event_stream()
    assert _hooks(callbacks) == 0
    for data in [CONFIG, one]:
        reg.push_blob("mirror", data)  # already stored: only linked, no event
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert reg.push_manifest("mirror", "1", payload, OCI).status_code == 201  # the replica lacks this repository's copy
        event_stream()
    assert _hooks(callbacks) == 1


def test_the_same_object_pushed_twice_in_one_batch_is_queued_once(
    reg, replicating, event_stream, django_capture_on_commit_callbacks
):
    _, payload = reg.push_image("app", "1", [b"layer"])
    reg.push_manifest("app", "2", payload, OCI)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event_stream()
    assert _hooks(callbacks) == 3  # config, layer, the manifest (pushed twice)
