"""Session-wide real services: SeaweedFS started here; PostgreSQL and Redis chosen by settings/test.py."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from gateway import embedded


@pytest.fixture(scope="session", autouse=True)
def s3_server():
    """A real SeaweedFS S3 server on a free port for the whole session, with the Storj guard on."""
    from django.conf import settings

    from gateway.storage import reset_blob_stores

    data_dir = Path(tempfile.mkdtemp(prefix="wharf-s3-"))
    service = embedded.start_seaweedfs(data_dir, secret_key=secrets.token_hex(16), bucket="wharf-test")
    saved = {k: os.environ.get(k) for k in service.env}
    os.environ.update(service.env)  # subprocesses (manage.py, live servers) reach the same S3
    os.environ["GATEWAY_S3_STORJ_GUARD"] = "true"
    settings.GATEWAY_S3 = {
        **settings.GATEWAY_S3,
        "endpoint_url": service.env["AWS_S3_ENDPOINT_URL"],
        "access_key": service.env["AWS_ACCESS_KEY_ID"],
        "secret_key": service.env["AWS_SECRET_ACCESS_KEY"],
        "bucket": service.env["AWS_STORAGE_BUCKET_NAME"],
        "region": service.env["AWS_S3_REGION_NAME"],
        "storj_guard": True,
    }
    reset_blob_stores()
    yield service
    service.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def blob_store(s3_server):
    from gateway.storage import get_blob_store

    return get_blob_store()


@pytest.fixture(autouse=True)
def _clear_login_throttle():
    """Failed-login counters live in Redis for minutes (per account and per IP, and every test
    client is 127.0.0.1): no test, and no later test run, may inherit another's."""
    import redis
    from django.conf import settings

    from accounts import ratelimit

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(match=ratelimit.KEY_PREFIX + "*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def redis_client():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def event_stream(redis_client):
    """The registry's event stream, emptied; call it to deliver what was queued since (what beat does every minute)."""
    from gateway.registry.services import events, stream

    keys = (events.QUEUE_KEY, stream.PROCESSING_KEY, stream.BATCH_KEY)
    redis_client.delete(*keys)
    yield stream.events_flush
    redis_client.delete(*keys)
