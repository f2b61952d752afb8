"""A temporary /etc/hosts line, for host-based tenant endpoints."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from tests.e2e.harness.process import Unavailable, pid_alive

HOSTS_FILE = Path("/etc/hosts")
_HOSTS_MARK = "# wharf-e2e pid="


def _hosts_rewrite(f: TextIO, keep: Callable[[str], bool]) -> None:
    """Rewrite the (r+, flocked) hosts file in place keeping only the lines `keep` accepts."""
    f.seek(0)
    lines = f.read().splitlines(keepends=True)
    kept = [line for line in lines if keep(line)]
    if kept != lines:
        f.seek(0)
        f.write("".join(kept))
        f.truncate()
        f.flush()


def _stale_hosts_line(line: str) -> bool:
    m = re.search(re.escape(_HOSTS_MARK) + r"(\d+)", line)
    return m is not None and not pid_alive(int(m.group(1)))


@contextlib.contextmanager
def hosts_entry(name: str, ip: str = "127.0.0.1", *, hosts_file: Path = HOSTS_FILE) -> Iterator[str]:
    """Make `name` resolve to `ip` through /etc/hosts while the block runs; yields `name`.

    Adds one line tagged with this process's pid and a token, and removes exactly that line on
    exit, under an flock on the file (concurrent test runs each add and remove their own line;
    lines left by dead processes are swept). If the name already resolves to `ip` via an untagged
    line, nothing is written. Edits in place (no rename) so a bind-mounted /etc/hosts works.
    The harness's dockerd uses glibc's resolver (see `DockerDaemon`), so it sees the entry at once.
    """
    if not re.fullmatch(r"[A-Za-z0-9.-]+", name):
        raise ValueError(f"not a host name: {name!r}")
    token = secrets.token_hex(4)
    line = f"{ip} {name} {_HOSTS_MARK}{os.getpid()} {token}\n"
    try:
        f = hosts_file.open("r+")
    except OSError as e:
        raise Unavailable(f"cannot edit {hosts_file}: {e}") from e
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            _hosts_rewrite(f, lambda ln: not _stale_hosts_line(ln))
            f.seek(0)
            present = any(
                ln.split("#", 1)[0].split()[:1] == [ip] and name in ln.split("#", 1)[0].split()[1:] and _HOSTS_MARK not in ln
                for ln in f.read().splitlines()
            )
            if not present:
                f.seek(0, os.SEEK_END)
                if f.tell() and not _ends_with_newline(hosts_file):
                    f.write("\n")
                f.write(line)
                f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    try:
        yield name
    finally:
        if not present:
            with hosts_file.open("r+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    _hosts_rewrite(f, lambda ln: ln.rstrip("\n") != line.rstrip("\n"))
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
