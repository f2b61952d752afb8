"""Fixtures: `deploy/run.py` (what `make run` runs) as a child process on external PostgreSQL, Redis and S3."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest

from gateway.embedded import free_port
from tests.helpers import ROOT


@dataclass
class RunPy:
    """A running `deploy/run.py`: its process, port, var directory and combined output."""

    proc: subprocess.Popen
    port: int
    var: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 180) -> list[re.Match[str]]:
        """Wait until `pattern` occurs `count` times in the output (or fail with the output's tail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(re.finditer(pattern, self.output()))
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} x{count} not seen (exit {self.proc.poll()}):\n{self.output()[-4000:]}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def child_pid(self, name: str) -> int:
        """The pid of the latest `name` child run.py started."""
        return int(self.wait_for(rf"\[wharf\] {name} started \(pid (\d+)\)")[-1].group(1))

    def wait_exit(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)


def _admin_dsn(dbname: str) -> str:
    from django.db import connection

    s = connection.settings_dict
    host = quote(s.get("HOST") or "", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{quote(s.get('USER') or 'postgres', safe='')}@{host}{port}/{dbname}"


@pytest.fixture
def run_py(tmp_path: Path, s3_server) -> Iterator[Callable[..., RunPy]]:
    """Factory: start deploy/run.py with its own database and var dir (`**env` overrides); everything stopped after."""
    import psycopg
    from django.conf import settings

    started: list[RunPy] = []
    databases: list[str] = []

    def start(**extra_env: str) -> RunPy:
        name = f"wharf_run_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        databases.append(name)
        port, var = free_port(), tmp_path / f"var-{len(started)}"
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG", "DJANGO_SECRET_KEY")}
        env.update(
            DATABASE_URL=_admin_dsn(name),
            REDIS_URL=settings.REDIS_URL,
            PORT=str(port),
            GATEWAY_VAR_DIR=str(var),
            GATEWAY_WORKER_CONCURRENCY="1",
            GATEWAY_WEB_WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env)
        log = tmp_path / f"run-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "run.py")],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = RunPy(proc=proc, port=port, var=var, log=log)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()
    with psycopg.connect(_admin_dsn("postgres"), autocommit=True) as conn:
        for name in databases:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and its descendants (a worker "gone" with its pool); returns their pids."""
    parent = psutil.Process(pid)
    procs = [*parent.children(recursive=True), parent]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)
    return [p.pid for p in procs]
