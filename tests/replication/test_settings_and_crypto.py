"""Secrets at rest (key derivation, rotation, wrong keys) and the new settings' strict parsing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.core.crypto import SecretDecryptError, secret_decrypt, secret_encrypt
from gateway.settings import env as E
from tests.helpers import ROOT

KEY_A = "a" * 40
KEY_B = "b" * 40


def test_secrets_round_trip_and_never_appear_in_the_token(settings):
    settings.GATEWAY_ENCRYPTION_KEY = KEY_A
    token = secret_encrypt("s3-secret-key")
    assert "s3-secret-key" not in token and token != secret_encrypt("s3-secret-key")  # random IV
    assert secret_decrypt(token) == "s3-secret-key"


def test_the_key_can_be_rotated_and_a_lost_key_is_a_clear_error(settings):
    settings.GATEWAY_ENCRYPTION_KEY = KEY_A
    old = secret_encrypt("kept across rotation")
    settings.GATEWAY_ENCRYPTION_KEY = KEY_B
    with pytest.raises(SecretDecryptError, match="GATEWAY_ENCRYPTION_KEY"):
        secret_decrypt(old)
    settings.GATEWAY_ENCRYPTION_KEYS_PREVIOUS = [KEY_A]
    assert secret_decrypt(old) == "kept across rotation"
    settings.GATEWAY_ENCRYPTION_KEY = "short"
    with pytest.raises(ImproperlyConfigured, match="at least 32 characters"):
        secret_encrypt("x")


def _import_production(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_"))}
    full.update(
        DJANGO_SECRET_KEY="x" * 40,
        AWS_ACCESS_KEY_ID="a",
        AWS_SECRET_ACCESS_KEY="b",
        GATEWAY_TOKEN_KEYS_DIR="var/token-keys",
        GATEWAY_VAR_DIR=str(ROOT / "var" / "nonexistent"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", "import gateway.settings.production as s; print(s.GATEWAY_AUDIT_SAMPLE_RATE)"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
    )


def test_production_requires_an_encryption_key():
    r = _import_production()
    assert r.returncode != 0 and "GATEWAY_ENCRYPTION_KEY must be set" in r.stderr
    r = _import_production(GATEWAY_ENCRYPTION_KEY="too-short")
    assert r.returncode != 0 and "GATEWAY_ENCRYPTION_KEY must be at least 32 characters" in r.stderr
    r = _import_production(GATEWAY_ENCRYPTION_KEY="k" * 32, GATEWAY_AUDIT_SAMPLE_RATE="0.25")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.25"


def test_audit_settings_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("GATEWAY_AUDIT_SAMPLE_RATE", "1.5")
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_AUDIT_SAMPLE_RATE must be a number from 0 to 1"):
        E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001)
    monkeypatch.setenv("GATEWAY_AUDIT_SAMPLE_RATE", "nan")
    with pytest.raises(ImproperlyConfigured, match="from 0 to 1"):
        E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001)
    monkeypatch.setenv("GATEWAY_AUDIT_SAMPLE_RATE", "often")
    with pytest.raises(ImproperlyConfigured, match="from 0 to 1"):
        E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001)
    monkeypatch.setenv("GATEWAY_AUDIT_SAMPLE_RATE", " 0.01 ")
    assert E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001) == 0.01
    monkeypatch.delenv("GATEWAY_AUDIT_SAMPLE_RATE")
    assert E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001) == 0.001


def test_the_schedule_routes_audits_and_replication_to_the_audit_queue():
    from gateway.celery import app
    from gateway.replication.tasks import integrity_audit_task, replicate_object_task, replication_sweep_task
    from gateway.webhooks.tasks import webhook_deliver_task

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert schedule["integrity-audit"]["task"] == integrity_audit_task.name == "gateway.integrity.audit"
    assert schedule["integrity-audit"]["schedule"].minute == set(range(0, 60, 10))
    assert schedule["integrity-audit"]["options"]["queue"] == "audit" and schedule["integrity-audit"]["options"]["expires"] < 600
    assert schedule["replication-sweep"]["task"] == replication_sweep_task.name
    assert schedule["webhooks-sweep"]["task"] == "gateway.webhooks.sweep" and "gateway.webhooks.sweep" in app.tasks
    assert "usage-flush" in schedule  # merged, not replaced
    for t in (integrity_audit_task, replicate_object_task, replication_sweep_task):
        assert t.wharf_queue == "audit" and t.acks_late and t.ignore_result
    assert webhook_deliver_task.wharf_queue == "celery"
