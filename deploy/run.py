"""`make run`: the whole service in the foreground — web (gunicorn), Celery worker and beat.

Where DATABASE_URL, REDIS_URL or AWS_S3_ENDPOINT_URL are not set, embedded PostgreSQL,
Redis and SeaweedFS are started under ./var/ from PyPI wheels, their addresses written to
var/services.json (settings read it, so `.venv/bin/python manage.py ...` in another
terminal reaches the same services). Ctrl-C or SIGTERM stops everything started here.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import embedded  # noqa: E402

VAR = Path(os.environ.get("GATEWAY_VAR_DIR", ROOT / "var"))
PY = sys.executable


def log(msg: str) -> None:
    print(f"[wharf] {msg}", flush=True)


def _lock() -> object:
    VAR.mkdir(parents=True, exist_ok=True)
    handle = open(VAR / "run.lock", "a+")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(20))
        path.chmod(0o600)
    return path.read_text().strip()


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


def main() -> int:
    lock = _lock()
    services, service_env = start_missing_services()
    services_file = VAR / "services.json"
    embedded.write_env_file(services_file, service_env)
    env = {**os.environ, **service_env, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.local")
    port = env.get("PORT", "8000")
    children: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "storage_ensure"], cwd=ROOT, env=env, check=True)
        beat_schedule = VAR / "celerybeat-schedule"
        commands = {
            "web": [PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "gateway.wsgi:application"],
            "worker": [PY, "-m", "celery", "-A", "gateway", "worker", "-l", "info", "--concurrency", env.get("GATEWAY_WORKER_CONCURRENCY", "2"),
                       "-Q", "celery,gc,audit"],
            "beat": [PY, "-m", "celery", "-A", "gateway", "beat", "-l", "info", "-s", str(beat_schedule)],
        }
        for name, cmd in commands.items():
            children.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env)))
        log(f"Wharf is running at http://127.0.0.1:{port}/  (ready check: http://127.0.0.1:{port}/readyz)")
        log("Create a tenant and its owner:  .venv/bin/python manage.py create_tenant acme --owner alice --password-stdin")
        log(f"Then: docker login 127.0.0.1:{port} -u alice   and   docker push 127.0.0.1:{port}/acme/app:1")
        log("Press Ctrl-C to stop everything.")
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    log(f"{name} exited with code {proc.returncode}; stopping everything.")
                    code = proc.returncode or 1
                    stopping = True
            time.sleep(0.5)
    except subprocess.CalledProcessError as exc:
        log(f"set-up step failed: {' '.join(map(str, exc.cmd[1:]))} (exit {exc.returncode})")
        code = exc.returncode or 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log("stopping…")
        for _, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc in reversed(children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for svc in services:
            svc.terminate()  # in parallel: SeaweedFS alone takes ~15 s
        for svc in reversed(services):
            svc.stop()
        services_file.unlink(missing_ok=True)
        log("stopped.")
        lock.close()  # type: ignore[attr-defined]
    return code


if __name__ == "__main__":
    sys.exit(main())
