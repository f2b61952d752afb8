"""Replication fixtures: a webhook receiver, deterministic layers (the replica target is in tests/conftest.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import sha

OCI = "application/vnd.oci.image.manifest.v1+json"


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
