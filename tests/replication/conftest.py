"""Fixtures: a second bucket on the session's SeaweedFS as replica target, a tenant that replicates, a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from gateway.replication.services import storage_target_create, tenant_replication_set
from gateway.storage import get_blob_store
from gateway.storage.s3 import S3Config
from tests.registry.conftest import _clear_caches, anon, basic, make_reg, owner_token, reg, sha, tenant  # noqa: F401

OCI = "application/vnd.oci.image.manifest.v1+json"


def replica_config(bucket: str) -> S3Config:
    s3 = settings.GATEWAY_S3
    return S3Config(
        endpoint_url=s3["endpoint_url"], access_key=s3["access_key"], secret_key=s3["secret_key"], bucket=bucket,
        region=s3["region"], part_size=s3["part_size"], storj_guard=True,
    )


@pytest.fixture(scope="session")
def replica_bucket(s3_server) -> str:
    """A second bucket on the session's SeaweedFS (created through BlobStore.bucket_ensure).

    One per session, like the primary: SeaweedFS gives every bucket its own volumes and runs
    out of them after a few buckets. Tests do not collide in it, because tenant ids (and so
    every key, t/<tenant id>/...) are never reused within a session.
    """
    name = "wharf-test-replica"
    get_blob_store(replica_config(name)).bucket_ensure()
    return name


@pytest.fixture
def replica_store(replica_bucket):
    return get_blob_store(replica_config(replica_bucket))


@pytest.fixture
def target(db, replica_bucket):
    s3 = settings.GATEWAY_S3
    return storage_target_create(
        name="backup", endpoint_url=s3["endpoint_url"], bucket=replica_bucket, access_key=s3["access_key"], secret_key=s3["secret_key"],
        region=s3["region"],
    )


@pytest.fixture
def replicating(tenant, target):
    """The `acme` tenant, opted in to replication to `target`."""
    tenant_replication_set(tenant=tenant, target=target)
    return tenant


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HookServer:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Status codes to answer with, in order; 200 once they run out.
    responses: list[int] = field(default_factory=list)

    def signature_ok(self, r: Received, secret: str) -> bool:
        ts = r.headers["X-Wharf-Timestamp"]
        expected = "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + r.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, r.headers["X-Wharf-Signature"])


@pytest.fixture
def hook_server():
    """A real HTTP server on 127.0.0.1 recording every POST (headers, exact body)."""
    hook = HookServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                status = hook.responses.pop(0) if hook.responses else 200
                hook.requests.append(Received(headers=dict(self.headers.items()), body=body, status=status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/hooks/wharf"
    yield hook
    server.shutdown()
    server.server_close()


def layer(seed: str, size: int) -> bytes:
    """Deterministic bytes of a given size (not compressible into nothing, not all equal)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


__all__ = ["OCI", "layer", "sha"]
