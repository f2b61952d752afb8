"""Plain helpers more than one test directory imports: an OCI test client, digests, child processes on the test database."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.test import Client

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    host = quote(s.get("HOST") or "", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    auth = quote(s.get("USER") or "postgres", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment a child process needs to see what this test sees (DB, Redis, S3)."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.test",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def celery_worker(queues: str, log: Any, **env: str) -> subprocess.Popen:
    """A real Celery worker process (solo pool, one task at a time) on these comma-separated queues, logging to `log`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gateway",
            "worker",
            "--pool=solo",
            "-Q",
            queues,
            "--concurrency=1",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=subprocess_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def manage(*args: str, input: str | None = None, **extra_env: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in a child process: only where the child process is what a test checks (settings, kills)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=subprocess_env(**extra_env),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


def command(*args: str, input: str | None = None) -> CommandResult:
    """`manage.py ARGS` run in this process by call_command, with the exit code and output manage.py would give."""
    from django.core.management import CommandError, call_command

    out, err, stdin = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(input or "")
    try:
        call_command(*args, stdout=out, stderr=err)
        returncode = 0
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        returncode = exc.returncode
    finally:
        sys.stdin = stdin
    return CommandResult(returncode=returncode, stdout=out.getvalue(), stderr=err.getvalue())


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reg:
    """A Django test client speaking to /v2/ as one identity."""

    client: Client
    auth: str | None
    prefix: str = "/v2/acme"

    def h(self, **extra):
        if self.auth:
            extra["HTTP_AUTHORIZATION"] = self.auth
        return extra

    def get(self, path, **extra):
        return self.client.get(path, **self.h(**extra))

    def head(self, path, **extra):
        return self.client.head(path, **self.h(**extra))

    def delete(self, path, **extra):
        return self.client.delete(path, **self.h(**extra))

    def post(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("POST", path, data, content_type=content_type, **self.h(**extra))

    def put(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("PUT", path, data, content_type=content_type, **self.h(**extra))

    def patch(self, path, data=b"", content_type="application/octet-stream", **extra):
        return self.client.generic("PATCH", path, data, content_type=content_type, **self.h(**extra))

    # -- conveniences -----------------------------------------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        r = self.post(f"{self.prefix}/{repo}/blobs/uploads/?digest={digest}", data)
        assert r.status_code == 201, r.content
        return digest

    def push_manifest(self, repo: str, ref: str, doc: dict | bytes, media_type: str | None = None):
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        mt = media_type or (
            json.loads(payload).get("mediaType") if not isinstance(doc, bytes) else "application/vnd.oci.image.manifest.v1+json"
        )
        return self.put(f"{self.prefix}/{repo}/manifests/{ref}", payload, content_type=mt)

    def push_image(
        self, repo: str, ref: str, layers: list[bytes], config: bytes = b'{"architecture":"amd64","os":"linux"}'
    ) -> tuple[str, bytes]:
        cfg = self.push_blob(repo, config)
        layer_descs = []
        for layer in layers:
            d = self.push_blob(repo, layer)
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(layer)})
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
            "layers": layer_descs,
        }
        payload = json.dumps(doc).encode()
        r = self.push_manifest(repo, ref, payload, "application/vnd.oci.image.manifest.v1+json")
        assert r.status_code == 201, r.content
        return sha(payload), payload


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def replica_config(bucket: str):
    """The session's S3 settings pointed at another bucket: a replication target on the same SeaweedFS."""
    from django.conf import settings

    from gateway.storage.s3 import S3Config

    s3 = settings.GATEWAY_S3
    return S3Config(
        endpoint_url=s3["endpoint_url"],
        access_key=s3["access_key"],
        secret_key=s3["secret_key"],
        bucket=bucket,
        region=s3["region"],
        part_size=s3["part_size"],
        storj_guard=True,
    )


def replicate_all(tenant) -> dict:
    """Run the tenant's replication sweep synchronously until it has nothing left; the summed counts."""
    from gateway.replication.sweep import replication_sweep

    counts: dict = {}
    run_id = None
    while True:
        result = replication_sweep(tenant_id=tenant.pk, sync=True, force=True, run_id=run_id)
        run_id = result.run.pk
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + v
        if not result.more:
            return counts
