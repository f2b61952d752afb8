"""Processes the harness runs: the client binaries, commands with captured output, daemons in their own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# --- binaries (Debian packages docker.io, containerd, skopeo, docker-registry) --------------------

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # the 20.10 CLI that matches dockerd; /usr/local/bin/docker may be a newer, daemonless one
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
SKOPEO = "/usr/bin/skopeo"
DISTRIBUTION = "/usr/bin/docker-registry"

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class Unavailable(RuntimeError):
    """A binary or daemon the harness needs is missing or will not start on this machine."""


class CommandError(RuntimeError):
    """A client command failed (or timed out); the message carries its stdout and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, note: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = note or f"exit code {returncode}"
        super().__init__(f"{' '.join(self.argv)!r} failed ({status})\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}")


# --- small utilities ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(path: str) -> str:
    """`path` if it is an executable file, else raise `Unavailable` naming the Debian package."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    package = {
        DOCKERD: "docker.io",
        DOCKER: "docker.io",
        CONTAINERD: "containerd",
        CTR: "containerd",
        SKOPEO: "skopeo",
        DISTRIBUTION: "docker-registry",
    }.get(path, "?")
    raise Unavailable(f"{path} not found (Debian package {package}; `make system-deps` installs it)")


def child_env(extra: Mapping[str, str] | None = None, *, drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment without proxy variables (tests only talk to 127.0.0.1) and `drop_prefixes`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS and not k.startswith(tuple(drop_prefixes))}
    env.update(extra or {})
    return env


def run_command(
    argv: Sequence[str],
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout and captured text output; on failure raise `CommandError` with both streams."""
    try:
        proc = subprocess.run(  # noqa: PLW1510 - checked below, to raise with both streams
            list(argv),
            input=input,
            env=child_env(env),
            timeout=timeout,
            capture_output=True,
            text=True,
            errors="replace",
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise CommandError(argv, None, out, err, note=f"timed out after {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def wait_until(predicate: Callable[[], bool], what: str, timeout: float, process: ManagedProcess | None = None) -> None:
    """Poll `predicate` every 0.1 s; raise `Unavailable` with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.proc.poll() is not None:
            raise Unavailable(f"{what} exited with code {process.proc.returncode} while starting:\n{process.log_tail()}")
        time.sleep(0.1)
    tail = process.log_tail() if process is not None else ""
    raise Unavailable(f"{what} not ready within {timeout:.0f}s\n{tail}")


@dataclass
class ManagedProcess:
    """A daemon started by the harness in its own process group, logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        drop_env_prefixes: Sequence[str] = (),
    ) -> ManagedProcess:
        """Start `argv` in a new session (so its children can be signalled together), output to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(env, drop_prefixes=drop_env_prefixes),
                start_new_session=True,
            )
        return cls(name, proc, log)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log file."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of it."""
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # whatever is left in the group, even after the leader exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
