"""Both callers of the outbound address policy: replication targets (create and every use) and webhooks (create and send)."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from gateway.core.errors import ValidationError
from gateway.registry.models import Blob
from gateway.replication.models import ObjectReplica, StorageTarget
from gateway.replication.services import replica_replicate
from gateway.replication.sweep import replication_sweep
from gateway.replication.targets import storage_target_create
from gateway.storage import StorageError
from gateway.webhooks.models import WebhookEndpoint
from gateway.webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db


def _creds() -> dict[str, str]:
    s3 = settings.GATEWAY_S3
    return {"access_key": s3["access_key"], "secret_key": s3["secret_key"], "region": s3["region"]}


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:{port}", "http://[64:ff9b::7f00:1]:{port}", "http://[2002:7f00:1::]:{port}"]
)
def test_a_private_replication_target_is_refused(replica_bucket, settings, endpoint):
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    port = settings.GATEWAY_S3["endpoint_url"].rsplit(":", 1)[1]
    with pytest.raises(ValidationError, match="Replication target endpoint host .* non-public address"):
        storage_target_create(name="lan", endpoint_url=endpoint.format(port=port), bucket=replica_bucket, **_creds())
    assert not StorageTarget.objects.exists()


def test_the_command_refuses_a_private_target(replica_bucket, settings, monkeypatch):
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    monkeypatch.setattr("sys.stdin", io.StringIO(settings.GATEWAY_S3["secret_key"] + "\n"))
    with pytest.raises(CommandError, match="non-public address"):
        call_command(
            "replication_target_add",
            "lan",
            "--endpoint-url",
            settings.GATEWAY_S3["endpoint_url"],
            "--bucket",
            replica_bucket,
            "--access-key",
            settings.GATEWAY_S3["access_key"],
            "--secret-key-stdin",
        )
    assert not StorageTarget.objects.exists()


def test_a_target_that_became_private_is_not_written(reg, replicating, replica_store, settings):
    d = reg.push_blob("app", b"bytes for a target on our own network")
    key = Blob.objects.get(tenant=replicating, digest=d).storage_key
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False  # as if the target's name now resolved to 127.0.0.1
    result = replication_sweep(tenant_id=replicating.pk, sync=True, force=True)
    assert result.counts["errors"] == 1 and result.counts.get("replicated", 0) == 0
    row = ObjectReplica.objects.get(tenant=replicating, digest=d)
    assert row.state == "failed" and "non-public address" in row.last_error
    with pytest.raises(StorageError, match="non-public address"):
        replica_replicate(replica_id=row.pk)
    assert replica_store.stat(key) is None  # nothing reached the target


def test_a_webhook_to_nat64_or_6to4_is_refused(tenant, settings):
    # (An endpoint that turns private after registration: tests/replication/test_webhooks.py.)
    settings.GATEWAY_OUTBOUND_ALLOW_PRIVATE = False
    for url in ("http://[64:ff9b::7f00:1]/hook", "http://[2002:7f00:1::]/hook", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/"):
        with pytest.raises(ValidationError, match="Webhook URL host .* non-public address"):
            webhook_endpoint_create(tenant=tenant, url=url, events=["*"])
    assert not WebhookEndpoint.objects.filter(tenant=tenant).exists()
