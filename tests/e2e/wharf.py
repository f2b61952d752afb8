"""A live Wharf web server (gunicorn, real settings) for end-to-end tests against the test database."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import free_port
from tests.helpers import ROOT, subprocess_env


@dataclass
class WharfServer:
    port: int
    domain: str
    log: Path
    # Mails the server sends land here as files (Django's file backend; tests/browser/mail.py reads them).
    mail_dir: Path
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> WharfServer:
        env = subprocess_env(
            PORT=str(self.port),
            GATEWAY_BIND=f"127.0.0.1:{self.port}",
            GATEWAY_REGISTRY_DOMAIN=f"{self.domain}:{self.port}",
            GATEWAY_EXTERNAL_URL=f"http://127.0.0.1:{self.port}",
            DJANGO_ALLOWED_HOSTS=f"127.0.0.1,localhost,.{self.domain}",
            GATEWAY_WEB_WORKERS="2",
            DJANGO_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            DJANGO_EMAIL_FILE_PATH=str(self.mail_dir),
            **self.extra_env,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "gateway.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_wharf(tmp_dir: Path, *, domain: str = "wharf.test", port: int | None = None, **extra_env: str) -> WharfServer:
    mail_dir = tmp_dir / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    return WharfServer(
        port=port or free_port(), domain=domain, log=tmp_dir / "gunicorn.log", mail_dir=mail_dir, extra_env=extra_env
    ).start()
