"""The benchmark's private world: SeaweedFS, PostgreSQL, Redis, Wharf's gunicorn, two Distributions.

Everything is started by `Lab` into one temporary directory and stopped by `Lab.close()` (also
on Ctrl-C / SIGTERM, which `bench/run.py` turns into KeyboardInterrupt). Nothing here touches
the developer's `make run` state: Wharf runs with its own GATEWAY_VAR_DIR, so var/services.json
is never read, and the machine's PostgreSQL / Redis are used only through a fresh database and
an empty Redis db that are dropped / flushed at the end.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway import embedded  # noqa: E402
from tests.e2e import harness  # noqa: E402

PY = sys.executable
BUCKET = "wharf-bench"
TENANT = "bench"
OWNER = "benchowner"
REDIS_DBS = (12, 13, 14, 15)


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


@dataclass
class WharfWeb:
    """Wharf's gunicorn (master + workers), started by us in its own session."""

    port: int
    proc: subprocess.Popen
    log_path: Path
    env: dict[str, str]
    user: str = OWNER
    token: str = ""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def creds(self) -> str:
        return f"{self.user}:{self.token}"

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(self.creds.encode()).decode()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)  # anything left in the group


@dataclass
class Lab:
    work: Path
    keep: bool = False
    distribution_auth: bool = False
    wharf_extra_env: dict[str, str] = field(default_factory=dict)
    s3: embedded.Service | None = None
    s3_env: dict[str, str] = field(default_factory=dict)
    db_url: str = ""
    redis_url: str = ""
    wharf: WharfWeb | None = None
    dist: dict[str, harness.DistributionRegistry] = field(default_factory=dict)
    dist_creds: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    _cleanups: list = field(default_factory=list)  # (name, fn), run in reverse
    _dist_logs: dict[str, str] = field(default_factory=dict)

    # -- set-up --------------------------------------------------------------------------------

    def start(self, *, want_dist: bool = True) -> Lab:
        self.work.mkdir(parents=True, exist_ok=True)
        self._start_s3()
        self._start_postgres()
        self._start_redis()
        self._start_wharf()
        if want_dist:
            self._start_distributions()
        return self

    def _start_s3(self) -> None:
        log("starting SeaweedFS (S3) on free ports")
        data_dir = self.work / "s3"
        try:
            svc = embedded.start_seaweedfs(data_dir, secret_key=secrets.token_hex(20), bucket=BUCKET)
        except BaseException:
            _kill_by_cmdline(f"-dir={data_dir}")  # start_seaweedfs leaves its process behind when it fails
            raise
        self.s3 = svc
        self.s3_env = dict(svc.env)
        self._cleanups.append(("SeaweedFS", svc.stop))

    def _start_postgres(self) -> None:
        if embedded.port_open("127.0.0.1", 5432):
            import psycopg

            name = f"wharf_bench_{os.getpid()}"
            admin = "postgresql://postgres@127.0.0.1:5432/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')

            def drop() -> None:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            self._cleanups.append((f"database {name}", drop))
            self.db_url = f"postgres://postgres@127.0.0.1:5432/{name}"
            log(f"PostgreSQL: the machine's, fresh database {name}")
        else:
            log("PostgreSQL: none on 127.0.0.1:5432, starting an embedded one")
            svc = embedded.start_postgres(self.work / "postgres", database="wharf_bench")
            self._cleanups.append(("embedded PostgreSQL", svc.stop))
            self.db_url = svc.env["DATABASE_URL"]

    def _start_redis(self) -> None:
        if embedded.port_open("127.0.0.1", 6379):
            import redis

            for db in REDIS_DBS:
                client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=5)
                if client.dbsize() == 0:
                    self.redis_url = f"redis://127.0.0.1:6379/{db}"

                    def flush(client: redis.Redis = client) -> None:
                        client.flushdb()

                    self._cleanups.append((f"Redis db {db}", flush))
                    log(f"Redis: the machine's, empty db {db} (flushed at the end)")
                    return
            self.notes.append(f"Redis dbs {REDIS_DBS} on the machine's server are all in use; using an embedded Redis")
        log("Redis: starting an embedded one")
        svc = embedded.start_redis(self.work / "redis")
        self._cleanups.append(("embedded Redis", svc.stop))
        self.redis_url = svc.env["REDIS_URL"]

    def wharf_env(self, port: int) -> dict[str, str]:
        env = harness.child_env(drop_prefixes=("DJANGO_", "GATEWAY_", "AWS_", "DATABASE_URL", "REDIS_URL", "CELERY_"))
        env.update(self.s3_env)
        env.update(
            DJANGO_SETTINGS_MODULE="gateway.settings.local",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_DEBUG="false",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.db_url,
            REDIS_URL=self.redis_url,
            GATEWAY_VAR_DIR=str(self.work / "wharf-var"),
            GATEWAY_TOKEN_KEYS_DIR=str(self.work / "wharf-var" / "token-keys"),
            PORT=str(port),
            GATEWAY_BIND=f"127.0.0.1:{port}",
            GATEWAY_REGISTRY_DOMAIN=f"127.0.0.1:{port}",
            GATEWAY_EXTERNAL_URL=f"http://127.0.0.1:{port}",
            GATEWAY_WEB_WORKERS="2",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.wharf_extra_env)
        return env

    def manage(self, *args: str, input: str | None = None, timeout: float = 300) -> str:
        assert self.wharf is not None
        proc = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.wharf.env, input=input, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def _start_wharf(self) -> None:
        port = harness.free_port()
        env = self.wharf_env(port)
        (self.work / "wharf-var").mkdir(parents=True, exist_ok=True)
        log_path = self.work / "gunicorn.log"
        # manage.py needs the env before gunicorn exists; a placeholder WharfWeb carries it.
        self.wharf = WharfWeb(port=port, proc=None, log_path=log_path, env=env)  # type: ignore[arg-type]
        log("migrating the bench database")
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("create_tenant", TENANT, "--owner", OWNER, "--password-stdin", input=secrets.token_urlsafe(24) + "\n")
        self.wharf.token = self.manage("create_token", OWNER, "--name", "bench", "--scopes", "pull,push,delete").strip()
        if (ROOT / "accounts" / "management" / "commands" / "token_key_create.py").exists():
            # One signing key before the workers start (rather than each worker creating one on first use).
            self.manage("token_key_create")
        self.wharf = self._spawn_wharf(self.wharf)

    def start_twin(self, name: str, extra_env: dict[str, str]) -> WharfWeb:
        """A second gunicorn of the same Wharf (database, Redis, credentials) on its own port, with `extra_env` on top."""
        assert self.wharf is not None
        port = harness.free_port()
        env = {**self.wharf.env, "PORT": str(port), "GATEWAY_BIND": f"127.0.0.1:{port}", **extra_env}
        twin = WharfWeb(port=port, proc=None, log_path=self.work / f"gunicorn-{name}.log", env=env, token=self.wharf.token)  # type: ignore[arg-type]
        return self._spawn_wharf(twin)

    def _spawn_wharf(self, web: WharfWeb) -> WharfWeb:
        """Start `web`'s gunicorn (2 workers) and wait until it answers /healthz and both workers are up."""
        log(f"starting Wharf's gunicorn (2 workers) on 127.0.0.1:{web.port}")
        proc = subprocess.Popen(
            [PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "gateway.wsgi:application"],
            cwd=ROOT,
            env=web.env,
            stdout=web.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        web.proc = proc
        self._cleanups.append((f"Wharf gunicorn on {web.port}", web.stop))
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Wharf's gunicorn exited with {proc.returncode}:\n{web.log_tail()}")
            try:
                urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{web.host}/healthz", timeout=1)
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Wharf did not answer /healthz within 60 s:\n{web.log_tail()}") from None
                time.sleep(0.2)
        # Wait for both workers to be up (children of the master), so RSS baselines are complete.
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        return web

    def _start_distributions(self) -> None:
        target = harness.S3Target(
            self.s3_env["AWS_S3_ENDPOINT_URL"],
            self.s3_env["AWS_ACCESS_KEY_ID"],
            self.s3_env["AWS_SECRET_ACCESS_KEY"],
            BUCKET,
            region="us-east-1",
        )
        users = None
        if self.distribution_auth:
            self.dist_creds = ("bench", secrets.token_urlsafe(16))
            users = dict([self.dist_creds])
        for name, redirect in (("dist-off", False), ("dist-on", True)):
            log(f"starting Distribution ({name}: S3 driver, redirect {'on' if redirect else 'off'})")
            reg = harness.start_distribution(self.work / name, storage="s3", s3=target, redirect=redirect, users=users)
            self.dist[name] = reg

            def stop(reg: harness.DistributionRegistry = reg, name: str = name) -> None:
                self._dist_logs[name] = reg.process.log_tail(4000)
                reg.stop()

            self._cleanups.append((f"Distribution {name}", stop))

    # -- runtime helpers ---------------------------------------------------------------------

    def set_redirect(self, on: bool) -> float:
        """Flip the bench tenant's redirect_blob_downloads; returns when (monotonic) it was written.

        The web processes cache tenants for 10 s (gateway/registry/v2/base.py _TTL), so the
        caller waits until then + margin before relying on the new mode.
        """
        code = (
            "from accounts.models import Tenant; "
            f"n = Tenant.objects.filter(slug={TENANT!r}).update(redirect_blob_downloads={on!r}); "
            "assert n == 1, n"
        )
        self.manage("shell", "-c", code)
        return time.monotonic()

    def blob_probe(self, repo: str, digest: str) -> int:
        """GET the first byte of a blob without following redirects: 206 proxied, 307 redirect."""
        assert self.wharf is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.wharf.port, timeout=30)
        try:
            conn.request(
                "GET",
                f"/v2/{TENANT}/{repo}/blobs/{digest}",
                headers={"Authorization": self.wharf.authorization, "Range": "bytes=0-0"},
            )
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def wharf_pids(self, web: WharfWeb | None = None) -> list[int]:
        """The gunicorn master and workers of `web` (default: the lab's Wharf)."""
        web = web or self.wharf
        assert web is not None
        return [web.proc.pid, *children(web.proc.pid)]

    def s3_pids(self) -> list[int]:
        assert self.s3 is not None and self.s3.proc is not None
        return [self.s3.proc.pid, *children(self.s3.proc.pid)]

    def dist_pids(self, name: str) -> list[int]:
        pid = self.dist[name].process.proc.pid
        return [pid, *children(pid)]

    def dist_log_tail(self, name: str) -> str:
        if name in self.dist:
            return self.dist[name].process.log_tail(3000)
        return self._dist_logs.get(name, "")

    # -- tear-down -----------------------------------------------------------------------------

    def close(self) -> None:
        # SeaweedFS takes ~15 s to stop: signal it first, stop the rest in reverse order, then wait for it.
        if self.s3 is not None:
            with contextlib.suppress(Exception):
                self.s3.terminate()
        for name, fn in reversed(self._cleanups):
            if name == "SeaweedFS":
                continue
            try:
                fn()
            except Exception as exc:  # keep cleaning up
                log(f"clean-up of {name} failed: {exc}")
        if self.s3 is not None:
            try:
                self.s3.stop()
            except Exception as exc:
                log(f"clean-up of SeaweedFS failed: {exc}")
        self._cleanups = []
        if self.keep:
            log(f"kept the work directory {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def children(pid: int) -> list[int]:
    """Direct and indirect children of pid (via /proc/<pid>/task/*/children, else a /proc scan)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids: list[int] = []
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            kids = _scan_children(p)
        out += kids
        todo += kids
    return out


def _scan_children(ppid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid:
            kids.append(int(d.name))
    return kids


def _kill_by_cmdline(marker: str) -> None:
    """SIGKILL the processes whose command line contains `marker` (a path only we use)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(d.name), 9)
