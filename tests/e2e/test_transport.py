"""The web tier against raw sockets: honest keep-alive, slow clients, broken chunked bodies, upload memory.

A live gunicorn (deploy/gunicorn.conf.py, gateway.core.http_worker.WharfWorker) with small
timeouts, so every case ends within seconds; clients only ever talk to 127.0.0.1.
docs/decisions/0010.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import random
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from gateway.registry.models import BlobUpload
from tests.e2e.wharf import WharfServer, start_wharf

T = TypeVar("T")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HEADER_TIMEOUT = 3
BODY_IDLE = 2
BODY_GRACE = 2
ZERO_DIGEST = "sha256:" + "0" * 64


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def read_response(sock: socket.socket) -> Response:
    """One HTTP/1.1 response with a Content-Length body (what Wharf sends) from a blocking socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {buf[:200]!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Response(int(lines[0].split()[1]), headers, body[:length])


def closed_by_server(sock: socket.socket, timeout: float = 10) -> bool:
    """True when the server ends the connection (EOF or reset) within `timeout`, discarding what it sends."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def connect(server: WharfServer, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(method: str, path: str, *, auth: str = "", **headers: str | int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if auth:
        lines.append(f"Authorization: Basic {auth}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Pusher:
    slug: str
    auth: str  # base64 user:token

    def start_upload(self, server: WharfServer, repo: str = "app") -> str:
        with connect(server) as sock:
            sock.sendall(request_head("POST", f"/v2/{self.slug}/{repo}/blobs/uploads/", auth=self.auth, Content_Length=0))
            resp = read_response(sock)
        assert resp.status == 202, resp
        return resp.headers["location"]

    def upload_state(self, location: str) -> BlobUpload:
        return BlobUpload.objects.get(pk=uuid.UUID(location.rstrip("/").rsplit("/", 1)[1]))


@pytest.fixture(scope="module")
def edge(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WharfServer]:
    """A live Wharf with short header/body deadlines and few threads (4 for bodies, 2 reserved, per process)."""
    with django_db_blocker.unblock():
        server = start_wharf(
            tmp_path_factory.mktemp("edge"),
            GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
            GATEWAY_HTTP_BODY_IDLE_TIMEOUT_SECONDS=str(BODY_IDLE),
            GATEWAY_HTTP_BODY_GRACE_SECONDS=str(BODY_GRACE),
            GATEWAY_HTTP_BODY_MIN_RATE_BYTES="1024",
            GATEWAY_WEB_THREADS="4",
            GATEWAY_WEB_RESERVED_THREADS="2",
        )
    yield server
    server.stop()


@pytest.fixture
def pusher(wharf_tenant) -> Pusher:
    tenant, user, token = wharf_tenant
    return Pusher(tenant.slug, base64.b64encode(f"{user}:{token}".encode()).decode())


# --- item 2: keep-alive is announced only when it will be honoured ----------------------------------


def test_a_tls_hello_on_the_plain_port_is_refused_at_once(edge: WharfServer) -> None:
    """Clients with TLS verification off try https first: their ClientHello gets a 400 and a close, not a wait for headers."""
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))  # a TLS record header + ClientHello start
    with connect(edge) as sock:
        sock.sendall(hello)
        sock.settimeout(HEADER_TIMEOUT - 1)  # before the header deadline would have answered 408
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert closed_by_server(sock, timeout=HEADER_TIMEOUT - 1)
    with connect(edge) as sock:  # and plain HTTP on the same port still works
        sock.sendall(request_head("GET", "/healthz"))
        assert read_response(sock).status == 200


def test_error_before_a_small_unread_body_keeps_the_connection(edge: WharfServer, pusher: Pusher) -> None:
    """A 401 to a POST whose 200 KiB body was never read: the body is drained and the next request works on the socket."""
    size = 200 * 1024  # beyond gunicorn's own 64 KiB drain, within ours
    with connect(edge) as sock:
        sock.sendall(request_head("POST", f"/v2/{pusher.slug}/app/blobs/uploads/?digest={ZERO_DIGEST}", Content_Length=size))
        sock.sendall(b"x" * size)
        first = read_response(sock)
        sock.sendall(request_head("GET", "/healthz"))
        second = read_response(sock)
    assert (first.status, first.headers["connection"]) == (401, "keep-alive")
    assert first.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert (second.status, second.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("case", ["401-large-body", "413-manifest"])
def test_error_before_a_large_unread_body_says_connection_close(case: str, edge: WharfServer, pusher: Pusher) -> None:
    """A large unread body is not waited for: the answer says `Connection: close`, and the server does close."""
    if case == "401-large-body":
        head = request_head("POST", f"/v2/{pusher.slug}/app/blobs/uploads/?digest={ZERO_DIGEST}", Content_Length=8 * 1024 * 1024)
        status, code = 401, "UNAUTHORIZED"
    else:
        head = request_head(
            "PUT",
            f"/v2/{pusher.slug}/app/manifests/v1",
            auth=pusher.auth,
            Content_Length=5 * 1024 * 1024,
            Content_Type="application/vnd.oci.image.manifest.v1+json",
        )
        status, code = 413, "MANIFEST_INVALID"
    with connect(edge) as sock:
        sock.sendall(head + b"{" * 65536)  # the client is still sending when the answer comes
        resp = read_response(sock)
        assert (resp.status, resp.headers["connection"]) == (status, "close")
        assert resp.json()["errors"][0]["code"] == code
        assert closed_by_server(sock)
    with connect(edge) as sock:  # and the service is fine
        sock.sendall(request_head("GET", "/healthz"))
        assert read_response(sock).status == 200


# --- item 16: broken chunked bodies are a 400 and change nothing ----------------------------------------

BROKEN_CHUNKED = {
    "bad-size": b"zz\r\nhello\r\n0\r\n\r\n",
    "no-crlf-after-data": b"5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n",
    "bad-extension": b"5;\x01\r\nhello\r\n0\r\n\r\n",
    "cut-mid-chunk": b"400\r\n" + b"a" * 100,  # then the client half-closes
    "cut-before-last-chunk": b"5\r\nhello\r\n",
}


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("case", sorted(BROKEN_CHUNKED))
def test_broken_chunked_body_is_a_400_and_the_session_keeps_its_offset(
    case: str, method: str, edge: WharfServer, pusher: Pusher
) -> None:
    location = pusher.start_upload(edge)
    good = b"0123456789" * 100
    with connect(edge) as sock:  # a first chunk that is fine
        sock.sendall(request_head("PATCH", location, auth=pusher.auth, Content_Length=len(good)) + good)
        assert read_response(sock).status == 202
    before = pusher.upload_state(location)
    path = location if method == "PATCH" else f"{location}?digest=sha256:{hashlib.sha256(good + b'hello').hexdigest()}"
    with connect(edge) as sock:
        sock.sendall(request_head(method, path, auth=pusher.auth, Transfer_Encoding="chunked"))
        sock.sendall(BROKEN_CHUNKED[case])
        if case.startswith("cut-"):
            sock.shutdown(socket.SHUT_WR)
        resp = read_response(sock)
    assert resp.status == 400, resp
    assert resp.headers["connection"] == "close"
    assert resp.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    after = pusher.upload_state(location)
    assert (after.state, after.offset, bytes(after.hash_state), after.parts) == (
        BlobUpload.State.ACTIVE,
        before.offset,
        bytes(before.hash_state),
        before.parts,
    )
    with connect(edge) as sock:  # the session goes on where it was
        sock.sendall(request_head("GET", location, auth=pusher.auth))
        status = read_response(sock)
    assert (status.status, status.headers["range"]) == (204, f"0-{len(good) - 1}")


def test_broken_chunked_monolithic_post_is_a_400(edge: WharfServer, pusher: Pusher) -> None:
    with connect(edge) as sock:
        path = f"/v2/{pusher.slug}/app/blobs/uploads/?digest={ZERO_DIGEST}"
        sock.sendall(request_head("POST", path, auth=pusher.auth, Transfer_Encoding="chunked"))
        sock.sendall(BROKEN_CHUNKED["bad-size"])
        resp = read_response(sock)
    assert (resp.status, resp.json()["errors"][0]["code"]) == (400, "BLOB_UPLOAD_INVALID")


# --- item 11: slow clients -----------------------------------------------------------------------------


def test_a_one_byte_per_second_body_is_cut_after_the_deadline_and_the_session_survives(edge: WharfServer, pusher: Pusher) -> None:
    location = pusher.start_upload(edge)
    with connect(edge, timeout=30) as sock:
        sock.sendall(request_head("PATCH", location, auth=pusher.auth, Content_Length=2 * 1024**3))
        started = time.monotonic()
        sent = 0
        while not select.select([sock], [], [], 1.0)[0]:  # 1 byte/s until the server answers
            sock.sendall(b"x")
            sent += 1
            assert sent < 30, "a 1 byte/s body was never cut off"
        resp = read_response(sock)
        elapsed = time.monotonic() - started
    assert (resp.status, resp.headers["connection"]) == (408, "close")
    assert resp.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    # Cut after the grace period, not before, and well before the body could ever end.
    assert BODY_GRACE <= elapsed < BODY_GRACE + BODY_IDLE + 5
    upload = pusher.upload_state(location)
    assert (upload.state, upload.offset) == (BlobUpload.State.ACTIVE, 0)
    data = b"abcdefghij"
    with connect(edge) as sock:
        sock.sendall(request_head("PATCH", location, auth=pusher.auth, Content_Length=len(data)) + data)
        resp = read_response(sock)
    assert (resp.status, resp.headers["range"]) == (202, "0-9")


@dataclass
class SlowClient:
    sock: socket.socket
    kind: str  # "headers" or "body"
    started: float = field(default_factory=time.monotonic)
    answer: bytes = b""
    answered_after: float | None = None
    closed: bool = False

    def tick(self) -> None:
        """Read what the server sent; if it has not answered, send one more byte."""
        try:
            while select.select([self.sock], [], [], 0)[0]:
                data = self.sock.recv(65536)
                if not data:
                    self.closed = True
                    break
                self.answer += data
        except OSError:
            self.closed = True
        if self.answer and self.answered_after is None:
            self.answered_after = time.monotonic() - self.started
        if self.answer or self.closed:
            return
        try:
            self.sock.send(b"x")
        except OSError:
            self.closed = True

    @property
    def status(self) -> int | None:
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", self.answer)
        return int(m.group(1)) if m else None


def test_a_hundred_slow_clients_leave_the_service_answering(edge: WharfServer, pusher: Pusher) -> None:
    """50 clients trickle headers, 50 trickle 2 GiB bodies: /healthz and /v2/ still answer at once, and every slow one is cut."""
    clients: list[SlowClient] = []
    for i in range(100):
        sock = connect(edge)
        sock.setblocking(False)
        if i % 2:
            sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            clients.append(SlowClient(sock, "headers"))
        else:
            path = f"/v2/{pusher.slug}/slow/blobs/uploads/?digest={ZERO_DIGEST}"
            sock.send(request_head("POST", path, auth=pusher.auth, Content_Length=2 * 1024**3))
            clients.append(SlowClient(sock, "body"))
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set() and not all(c.answer or c.closed for c in clients):
            for c in clients:
                c.tick()
            stop.wait(0.5)

    driver = threading.Thread(target=trickle, daemon=True)
    driver.start()
    try:
        time.sleep(1)  # every slow client is connected and trickling; the body threads are taken
        for _ in range(5):
            for head in (request_head("GET", "/healthz"), request_head("GET", "/v2/", auth=pusher.auth)):
                with connect(edge, timeout=5) as sock:  # a thread-starved server would not answer within 5 s
                    sock.sendall(head)
                    assert read_response(sock).status == 200
        driver.join(90)
        assert not driver.is_alive(), "slow clients were not all cut off"
    finally:
        stop.set()
        for c in clients:
            c.sock.close()
    by_kind: dict[str, set[int | None]] = {"headers": set(), "body": set()}
    for c in clients:
        by_kind[c.kind].add(c.status)
    assert by_kind == {"headers": {408}, "body": {408}}, by_kind
    header_times = [c.answered_after for c in clients if c.kind == "headers"]
    assert min(t for t in header_times if t is not None) >= HEADER_TIMEOUT - 0.5  # cut at the deadline, not before
    assert all(b"BLOB_UPLOAD_INVALID" in c.answer and b"Connection: close" in c.answer for c in clients if c.kind == "body")


# --- item 12: memory under concurrent uploads ------------------------------------------------------------

MiB = 1024 * 1024
PART = 5 * MiB
BUDGET = 3 * PART


def _vm_bytes(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (the most ever resident) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _worker_pids(server: WharfServer) -> list[int]:
    assert server.proc is not None
    pid = server.proc.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _push_chunked(server: WharfServer, pusher: Pusher, repo: str, seed: int, size: int, last: int = 0) -> tuple[str, str]:
    """Push `size` pseudo-random bytes: POST, one chunked PATCH (as Docker does), then PUT with the
    `last` bytes as its body; returns (digest of the bytes, digest the registry answered)."""
    rng = random.Random(seed)
    digest = hashlib.sha256()

    def body(left: int) -> Iterator[bytes]:
        while left:
            piece = rng.randbytes(min(MiB, left))
            digest.update(piece)
            left -= len(piece)
            yield piece

    location = pusher.start_upload(server, repo)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        headers = {"Authorization": f"Basic {pusher.auth}", "Content-Type": "application/octet-stream"}
        conn.request("PATCH", location, body=body(size - last), headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, (resp.status, resp.headers)
        final = b"".join(body(last))
        expected = f"sha256:{digest.hexdigest()}"
        conn.request("PUT", f"{resp.headers['Location']}?digest={expected}", body=final, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 201, (resp.status, resp.headers)
        return expected, resp.headers["Docker-Content-Digest"]
    finally:
        conn.close()


def _concurrently(n: int, fn: Callable[[int], T]) -> dict[int, T]:
    """fn(0) .. fn(n-1) in n threads at once; their results, or the first error raised."""
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = fn(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(500)
    assert not errors, errors
    assert len(results) == n
    return results


def _pulled_digest(server: WharfServer, pusher: Pusher, repo: str, digest: str) -> str:
    import urllib.request

    url = f"{server.url}/v2/{pusher.slug}/{repo}/blobs/{digest}"
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {pusher.auth}"})
    h = hashlib.sha256()
    with urllib.request.urlopen(req, timeout=120) as resp:
        while chunk := resp.read(MiB):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


@pytest.mark.timeout(600)
def test_sixteen_concurrent_uploads_stay_within_the_memory_budget(django_db_blocker, tmp_path: Path, pusher: Pusher) -> None:
    """16 concurrent 4-part uploads (5 MiB parts; 3 parts of budget per process): byte-identical, budget never exceeded."""
    with django_db_blocker.unblock():
        server = start_wharf(tmp_path, GATEWAY_S3_PART_SIZE=str(PART), GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES=str(BUDGET))
    try:
        # Warm up every thread of both workers (imports, database connections, S3 clients, part pool).
        _concurrently(16, lambda i: _push_chunked(server, pusher, f"warm{i}", i, PART + 1, last=1))
        baseline = {pid: _vm_bytes(pid, "VmRSS") for pid in _worker_pids(server)}
        # Three full parts in the PATCH, a short last part in the PUT. (A PATCH ending in less than
        # 5 MiB stores that tail in the database: services/uploads.py, outside this budget.)
        size, last = 4 * PART - 12345, PART - 12345
        results = _concurrently(16, lambda i: _push_chunked(server, pusher, f"big{i}", 100 + i, size, last=last))
        peak_rss = {pid: _vm_bytes(pid, "VmHWM") - baseline[pid] for pid in baseline}
        for i, (expected, pushed) in sorted(results.items()):
            assert pushed == expected
            assert _pulled_digest(server, pusher, f"big{i}", expected) == expected
    finally:
        server.stop()
    stats = re.findall(r"upload memory budget \(pid (\d+)\): peak (\d+), in use (\d+), limit (\d+) bytes", server.log.read_text())
    assert {int(pid) for pid, *_ in stats} == set(baseline), stats
    for _, peak, in_use, limit in stats:
        assert int(limit) == BUDGET
        assert PART <= int(peak) <= BUDGET  # used, and never beyond the budget
        assert int(in_use) == 0  # every reservation was given back
    # Resident memory: part buffers (at most the budget), botocore's copy of each part in flight
    # (at most the budget again), and the reads in progress. Without the budget the same run grew
    # the workers by 87-110 MiB (bounded: 28-50 MiB).
    print("peak RSS growth per worker (MiB):", {pid: round(v / MiB, 1) for pid, v in peak_rss.items()})
    assert all(v <= 3 * BUDGET + 16 * MiB for v in peak_rss.values()), peak_rss
