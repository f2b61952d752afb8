"""A web worker SIGKILLed mid-PATCH against a live gunicorn: the session resumes at once (decisions/0012).

The lease of an upload session is a PostgreSQL session advisory lock held by the request's
database connection; when the worker dies the kernel closes that connection and PostgreSQL drops
the lock, so the very next request takes the session — no 10-minute lease to wait out.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.db import connection

from gateway.core.locks import lock_id
from gateway.registry.locks import upload_lease_name
from gateway.registry.models import Blob, BlobUpload
from tests.e2e.wharf import WharfServer, start_wharf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
MiB = 1024 * 1024


@pytest.fixture
def wharf_5mib_parts(django_db_setup, django_db_blocker, tmp_path: Path) -> Iterator[WharfServer]:
    """A private live Wharf (its workers get killed here) with 5 MiB parts, so small blobs use multipart."""
    with django_db_blocker.unblock():
        server = start_wharf(tmp_path, GATEWAY_S3_PART_SIZE=str(5 * MiB), GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES="65536")
    yield server
    server.stop()


def lease_held(upload_id: object) -> bool:
    """Does some PostgreSQL backend hold this upload session's lease (an advisory lock on a bigint key)?"""
    key = lock_id(upload_lease_name(upload_id)) & 0xFFFF_FFFF_FFFF_FFFF
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid::bigint = %s AND objid::bigint = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [key >> 32, key & 0xFFFF_FFFF],
        )
        return bool(cursor.fetchone()[0])


def wait_for(condition, what: str, attempts: int = 600) -> None:
    """Poll a condition (0.05 s apart, 30 s at most): a wait for an event, not a timing assertion."""
    import time

    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def workers_of(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def worker_serving(client: socket.socket, workers: list[int]) -> int:
    """The worker process holding the server end of this client's TCP connection (from /proc/net/tcp)."""
    client_port = client.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == client_port:
            inodes.add(fields[9])
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    raise AssertionError(f"no worker of {workers} holds the connection from port {client_port}")


def test_a_worker_killed_mid_patch_leaves_a_session_that_resumes_at_once(wharf_5mib_parts: WharfServer, wharf_tenant) -> None:
    server = wharf_5mib_parts
    tenant, user, token = wharf_tenant
    http = requests.Session()
    http.auth = (user, token)
    base = f"{server.url}/v2/{tenant.slug}/crash"
    first, second = os.urandom(6 * MiB), os.urandom(6 * MiB)
    data = first + second

    r = http.post(f"{base}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = server.url + r.headers["Location"]
    upload_id = r.headers["Docker-Upload-UUID"]
    r = http.patch(
        location, data=first, headers={"Content-Range": f"0-{len(first) - 1}", "Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 202, r.text
    # One 5 MiB part is in S3 and the 1 MiB tail in its tail object.
    session = BlobUpload.objects.get(pk=upload_id)
    assert session.parts and session.tail_key and session.offset == len(first)

    # A client starts the next chunk, announces 6 MiB, sends 5 MiB and stalls: the request is mid-PATCH.
    auth = base64.b64encode(f"{user}:{token}".encode()).decode()
    stalled = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"PATCH {r.headers['Location']} HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(second)}\r\n"
        f"Content-Range: {len(first)}-{len(data) - 1}\r\n\r\n"
    ).encode()
    stalled.sendall(head + second[: 5 * MiB])
    try:
        wait_for(lambda: lease_held(upload_id), "the stalled PATCH to take the session's lease")

        # While it lives, a second writer gets one 416 with the recorded offset, and changes nothing.
        r = http.patch(location, data=b"intruder", headers={"Content-Range": f"{len(first)}-{len(first) + 7}"})
        assert r.status_code == 416, r.text
        assert r.headers["Range"] == f"0-{len(first) - 1}"
        assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"

        victim = worker_serving(stalled, workers_of(server.proc.pid))
        os.kill(victim, signal.SIGKILL)
        # PostgreSQL notices the dead connection and drops its locks (the new worker is still booting).
        wait_for(lambda: not lease_held(upload_id), "PostgreSQL to release the dead worker's lease")
    finally:
        stalled.close()

    # The status is the last committed offset; the very first resume is accepted (no lease to wait out).
    r = http.get(location)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{len(first) - 1}"
    r = http.patch(
        location,
        data=second,
        headers={"Content-Range": f"{len(first)}-{len(data) - 1}", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = http.put(f"{location}?digest={digest}")
    assert r.status_code == 201, r.text
    assert Blob.objects.get(tenant=tenant, digest=digest).size == len(data)
    pulled = http.get(f"{base}/blobs/{digest}")
    assert pulled.status_code == 200 and hashlib.sha256(pulled.content).hexdigest() == digest[7:] and pulled.content == data
    assert victim not in workers_of(server.proc.pid)  # it really died (gunicorn started a new one)
