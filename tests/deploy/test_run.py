"""`make run` (deploy/run.py): a killed worker comes back while web answers; fast crashes give up; DEBUG off; file modes."""

from __future__ import annotations

import json
import signal
import stat
import time
from pathlib import Path

import psutil
import pytest

from tests.deploy.conftest import kill_tree

pytestmark = pytest.mark.timeout(600)

WORKER_READY = r"celery@\S+ ready\."


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_killed_worker_is_restarted_while_web_keeps_answering(run_py):
    run = run_py()
    run.wait_for(WORKER_READY)
    first = run.child_pid("worker")
    web = run.child_pid("web")
    assert run.get("/healthz")[0] == 200

    # Not DEBUG unless asked: an unknown page is Django's plain 404, not the debug page.
    status, body = run.get("/no-such-page")
    assert status == 404 and b"DEBUG = True" not in body
    # Secrets under var/ are the owner's alone.
    assert _mode(run.var / "services.json") == 0o600 and _mode(run.var) in (0o700, 0o711)
    assert _mode(run.var / "secret_key") == 0o600

    kill_tree(first)
    run.wait_for(r"\[wharf\] worker exited with code -9 after \d+ s; restarting it in 1 s\.")
    answers = []
    while run.output().count("[wharf] worker started") < 2 and run.proc.poll() is None:
        answers.append(run.get("/healthz")[0])
        time.sleep(0.2)
    second = run.child_pid("worker")
    run.wait_for(WORKER_READY, count=2)
    answers.append(run.get("/healthz")[0])
    assert second != first and psutil.pid_exists(second)
    assert set(answers) == {200}, answers
    assert run.child_pid("web") == web and run.proc.poll() is None  # web was never restarted, run.py never stopped

    run.proc.send_signal(signal.SIGINT)  # Ctrl-C still stops everything
    assert run.wait_exit() == 0
    assert "[wharf] stopped." in run.output()
    assert not psutil.pid_exists(second) and not psutil.pid_exists(web)


def test_a_worker_crashing_on_start_is_given_up_with_a_clear_message(run_py):
    run = run_py(GATEWAY_WORKER_CONCURRENCY="not-a-number", GATEWAY_RUN_MAX_FAST_CRASHES="2")
    code = run.wait_exit(timeout=300)
    out = run.output()
    assert code != 0
    assert out.count("[wharf] worker started") == 3  # the first start and two restarts
    assert "restarting it in 1 s" in out and "restarting it in 2 s" in out
    assert "[wharf] worker crashed 3 times in a row, each within 60 s of starting" in out and "giving up" in out
    assert "[wharf] stopped." in out


def test_embedded_s3_config_and_secrets_are_not_world_readable(s3_server, tmp_path):
    from gateway import embedded

    config = Path(next(a.split("=", 1)[1] for a in s3_server.proc.args if str(a).startswith("-s3.config=")))
    assert _mode(config) == 0o600 and _mode(config.parent) == 0o700
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] in config.read_text()
    services = tmp_path / "var" / "services.json"
    embedded.write_env_file(services, {"AWS_SECRET_ACCESS_KEY": "s"})
    assert _mode(services) == 0o600 and json.loads(services.read_text()) == {"AWS_SECRET_ACCESS_KEY": "s"}
    embedded.write_env_file(services, {"AWS_SECRET_ACCESS_KEY": "t"})  # replaced atomically, still 0600
    assert _mode(services) == 0o600 and not list(services.parent.glob("*.tmp"))
