"""Fixtures more than one test directory uses.

Session-wide real services (SeaweedFS started here; PostgreSQL and Redis chosen by settings/test.py),
the `acme` tenant with clients of each identity, a replication target bucket, a seeded random source.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
from django.test import Client

from gateway import embedded
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic, replica_config


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


@pytest.fixture(scope="session")
def identity_providers():
    """Stand-in OpenID Connect and GitHub providers (tests/oidc_standin.py) for the session; the live Wharf signs in with them."""
    from tests.oidc_standin import start_identity_providers

    providers = start_identity_providers()
    yield providers
    providers.stop()


@pytest.fixture(scope="session")
def wharf(django_db_setup, django_db_blocker, tmp_path_factory, identity_providers):
    """One live Wharf (gunicorn, two workers) for the session, on the test database (e2e and API tests over HTTP),
    with sign-in through the stand-in identity providers configured from the environment."""
    from tests.e2e.harness import free_port
    from tests.e2e.wharf import start_wharf

    port = free_port()
    identity_providers.register(f"http://127.0.0.1:{port}")
    with django_db_blocker.unblock():
        server = start_wharf(tmp_path_factory.mktemp("wharf"), port=port, **identity_providers.env())
    yield server
    server.stop()


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


@pytest.fixture(autouse=True)
def _clear_caches():
    """Credential, tenant and role caches live per process: no test may see another's."""
    from gateway.registry import access
    from gateway.registry.v2 import auth

    auth.forget_cached_credentials()
    access.caches_clear()
    yield
    auth.forget_cached_credentials()
    access.caches_clear()


@pytest.fixture
def tenant(db):
    owner = UserFactory(username="owner")
    return make_tenant("acme", owner=owner)


@pytest.fixture
def owner_token(tenant):
    from accounts.models import User

    return make_token(User.objects.get(username="owner"))


@pytest.fixture
def reg(tenant, owner_token):
    return Reg(Client(), basic("owner", owner_token))


@pytest.fixture
def make_reg(tenant):
    def _make(role: str | None = None, scopes=("pull", "push", "delete"), tenant_obj=None, username=None):
        t = tenant_obj or tenant
        kwargs = {"username": username} if username else {}
        user = make_member(t, role, **kwargs) if role else UserFactory(**kwargs)
        return Reg(Client(), basic(user.username, make_token(user, scopes=scopes)))

    return _make


@pytest.fixture
def anon(tenant):
    return Reg(Client(), None)


@pytest.fixture(scope="session")
def replica_bucket(s3_server) -> str:
    """A second bucket on the session's SeaweedFS (created through BlobStore.bucket_ensure).

    One per session, like the primary: SeaweedFS gives every bucket its own volumes and runs
    out of them after a few buckets. Tests do not collide in it, because tenant ids (and so
    every key, t/<tenant id>/...) are never reused within a session.
    """
    from gateway.storage import get_blob_store

    name = "wharf-test-replica"
    get_blob_store(replica_config(name)).bucket_ensure()
    return name


@pytest.fixture
def replica_store(replica_bucket):
    from gateway.storage import get_blob_store

    return get_blob_store(replica_config(replica_bucket))


@pytest.fixture
def target(db, replica_bucket):
    from django.conf import settings

    from gateway.replication.targets import storage_target_create

    s3 = settings.GATEWAY_S3
    return storage_target_create(
        name="backup",
        endpoint_url=s3["endpoint_url"],
        bucket=replica_bucket,
        access_key=s3["access_key"],
        secret_key=s3["secret_key"],
        region=s3["region"],
    )


@pytest.fixture
def replicating(tenant, target):
    """The `acme` tenant, opted in to replication to `target`."""
    from gateway.replication.targets import tenant_replication_set

    tenant_replication_set(tenant=tenant, target=target)
    return tenant


SEED_ENV = "WHARF_TEST_SEED"


@pytest.fixture
def rng(request) -> random.Random:
    """A random source seeded from $WHARF_TEST_SEED (default fixed), so a randomised test can be replayed.

    The seed is printed; pytest shows it with the captured output of a failing test.
    """
    seed = int(os.environ.get(SEED_ENV, "9"))
    print(f"{request.node.nodeid}: random seed {seed} (replay with {SEED_ENV}={seed})")
    return random.Random(seed)


@pytest.fixture
def event_stream(redis_client):
    """The registry's event stream, emptied; call it to deliver what was queued since (what beat does every minute)."""
    from gateway.registry.services import events, stream

    keys = (events.QUEUE_KEY, stream.PROCESSING_KEY, stream.BATCH_KEY)
    redis_client.delete(*keys)
    yield stream.events_flush
    redis_client.delete(*keys)


@pytest.fixture
def small_parts(settings):
    """5 MiB parts, so multipart behaviour shows with small test data."""
    from gateway.storage import reset_blob_stores

    settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "part_size": 5 * 1024 * 1024}
    reset_blob_stores()
    yield
    reset_blob_stores()


@pytest.fixture(autouse=True)
def _clear_pull_limits():
    """Pull-rate windows live in Redis for 6 hours, keyed by tenant id, and every test database starts its ids at 1."""
    import redis
    from django.conf import settings

    from gateway.registry import pull_limits

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(match=pull_limits.KEY_PREFIX + "*"):
            client.delete(key)
    finally:
        client.close()
