"""Operator commands: the same services as the tasks, synchronously, with JSON output and clear errors."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from gateway.registry.models import Blob, JobRun
from gateway.replication.models import ObjectReplica, StorageTarget
from tests.helpers import command, sha

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str = "") -> dict | list:
    r = command(*args, input=stdin)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_set_up_replicate_and_report_from_the_command_line(reg, tenant, replica_bucket, replica_store):
    s3 = settings.GATEWAY_S3
    target = run(
        "replication_target_add",
        "offsite",
        "--endpoint-url",
        s3["endpoint_url"],
        "--bucket",
        replica_bucket,
        "--access-key",
        s3["access_key"],
        "--secret-key-stdin",
        stdin=s3["secret_key"] + "\n",
    )
    assert target["name"] == "offsite" and "secret" not in json.dumps(target)
    assert s3["secret_key"] not in StorageTarget.objects.get(name="offsite").secret_key_encrypted
    status = run("replication_set", "acme", "--target", "offsite")
    assert status["enabled"] is True and status["target"] == "offsite"

    reg.push_image("app", "1", [b"from the command line"])
    before = run("replication_status", "--tenant", "acme")
    assert before[0]["objects"]["pending"] == 3 and before[0]["lag_seconds"] >= 0

    summary = run("replicate", "--tenant", "acme")
    assert summary["state"] == "succeeded" and summary["counts"]["replicated"] == 3 and summary["kind"] == "replication"
    [status] = summary["status"]
    assert status["tenant"] == "acme" and status["health"] == "ok" and status["lag_seconds"] == 0
    assert status["objects"]["replicated"] == 3
    blob = Blob.objects.get(tenant=tenant, digest=sha(b"from the command line"))
    assert b"".join(replica_store.open_read(blob.storage_key)) == b"from the command line"
    assert JobRun.objects.get(pk=summary["run_id"]).state == "succeeded"

    audit = run("audit", "--tenant", "acme", "--sample-rate", "1")
    assert audit["state"] == "succeeded" and audit["counts"]["checked"] == 3 and audit["counts"]["deep_checked"] == 3
    assert audit["findings"] == [] and audit["tenant"] == "acme"
    [status] = run("replication_status")
    assert status["integrity"]["by_status"] == {"ok": 3}

    off = run("replication_set", "acme", "--off")
    assert off["enabled"] is False and off["health"] == "disabled"


def test_a_failed_copy_is_retried_by_the_command_even_past_its_backoff(reg, replicating):
    d = reg.push_blob("app", b"retry me")
    run("replicate", "--tenant", "acme")
    ObjectReplica.objects.filter(digest=d).update(state="failed", attempts=99, last_error="earlier outage")
    summary = run("replicate")
    assert summary["counts"]["replicated"] == 1
    assert ObjectReplica.objects.get(digest=d).state == "replicated"


def test_bad_arguments_give_clear_errors(tenant, target, monkeypatch):
    with pytest.raises(CommandError, match="no tenant with slug 'nope'"):
        call_command("audit", "--tenant", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="from 0 to 1"):
        call_command("audit", "--sample-rate", "2", stdout=io.StringIO())
    with pytest.raises(CommandError, match="from 0 to 1"):
        call_command("audit", "--sample-rate", "lots", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("audit", "--batch-size", "0", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no tenant"):
        call_command("replicate", "--tenant", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no storage target named 'nope'"):
        call_command("replication_set", "acme", "--target", "nope", stdout=io.StringIO())
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    with pytest.raises(CommandError, match="not a valid bucket name"):
        call_command(
            "replication_target_add",
            "x",
            "--endpoint-url",
            "http://127.0.0.1:1",
            "--bucket",
            "B!",
            "--access-key",
            "k",
            "--secret-key-stdin",
            stdout=io.StringIO(),
        )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="no secret key on stdin"):
        call_command(
            "replication_target_add",
            "x",
            "--endpoint-url",
            "http://127.0.0.1:1",
            "--bucket",
            "bucket",
            "--access-key",
            "k",
            "--secret-key-stdin",
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="Unknown webhook events"):
        call_command("webhook_add", "acme", "http://127.0.0.1/x", "--events", "push", stdout=io.StringIO())


def test_webhook_add_shows_the_secret_once(tenant):
    out = run("webhook_add", "acme", "http://127.0.0.1:9/hook", "--events", "integrity.problem,replication.failed")
    assert out["secret"].startswith("whsec_") and out["events"] == ["integrity.problem", "replication.failed"]
