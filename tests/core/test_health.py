"""/healthz and /readyz against the real database, Redis and S3; a dead dependency gives 503."""

import pytest
from django.test import Client

from gateway import health


@pytest.fixture
def client():
    return Client()


def test_healthz_says_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r["X-Request-ID"]


@pytest.mark.django_db
def test_readyz_checks_every_dependency(client):
    r = client.get("/readyz")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "storage"}
    assert all(c["ok"] for c in body["checks"].values())


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_is_503_when_the_bucket_is_missing(client, settings):
    from gateway.storage import reset_blob_stores

    settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "bucket": "no-such-bucket-here"}
    reset_blob_stores()
    try:
        r = client.get("/readyz")
    finally:
        reset_blob_stores()
    assert r.status_code == 503
    assert r.json()["checks"]["storage"]["ok"] is False


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_fails(client, monkeypatch):
    def broken():
        raise ConnectionError("database unreachable")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"] == {
        "ok": False,
        "error": "ConnectionError: database unreachable",
        "ms": pytest.approx(0, abs=50),
    }


def test_request_id_is_echoed_when_sane(client):
    r = client.get("/healthz", HTTP_X_REQUEST_ID="abc12345-req")
    assert r["X-Request-ID"] == "abc12345-req"
    r = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n")
    assert r["X-Request-ID"] != "bad id\n" and len(r["X-Request-ID"]) == 32
