"""A private dockerd (vfs storage, no iptables, no bridge) and a Docker CLI bound to it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness.process import DOCKER, DOCKERD, ManagedProcess, pid_alive, require_binary, run_command, wait_until

# Extra `--insecure-registry` values for the test dockerd. dockerd always treats 127.0.0.0/8 as
# insecure and matches host names against that CIDR by resolving them on every push/pull (verified
# with dockerd 20.10: acme.wharf.test -> 127.0.0.1 via /etc/hosts is plain HTTP), so a name added
# with `hosts_entry` needs nothing here. dockerd rejects wildcards
# such as "*.wharf.test" ("invalid host"); list exact "name:port" values or CIDRs only.
INSECURE_REGISTRIES: tuple[str, ...] = ()

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass
class DockerClient:
    """The docker CLI (/usr/bin/docker, 20.10 like the daemon) bound to one daemon and one DOCKER_CONFIG (its own logins).

    Verified sequences against Distribution 2.8 (registry on 127.0.0.1 or a name -> 127.0.0.1):
        docker import ROOTFS.tar wharf-e2e/x:latest && docker tag wharf-e2e/x:latest HOST/acme/app:v1
        docker load -i ARCHIVE.tar                       # build_docker_archive; image ID = config digest
        docker login HOST -u USER --password-stdin       # needs no daemon-side state; kept in DOCKER_CONFIG
        docker push HOST/acme/app:v1                     # prints "v1: digest: sha256:... size: N"
        docker rmi HOST/acme/app:v1 && docker pull HOST/acme/app:v1   # prints "Digest: sha256:..."
    Docker 20.10 cannot `docker load` an OCI layout/archive; push OCI layouts with skopeo instead.
    It pulls the OCI manifests skopeo pushes (gzip level 0 layers included).
    """

    daemon: DockerDaemon
    config_dir: Path

    def env(self) -> dict[str, str]:
        """DOCKER_HOST and DOCKER_CONFIG for this client."""
        return {"DOCKER_HOST": self.daemon.host, "DOCKER_CONFIG": str(self.config_dir)}

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/docker ARGS against the daemon."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        return run_command([DOCKER, *args], input=input, env=self.env(), timeout=timeout, check=check)

    def login(self, host: str, user: str, password: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`docker login HOST -u USER --password-stdin`."""
        return self.run("login", host, "-u", user, "--password-stdin", input=password + "\n", check=check)

    def push(self, ref: str) -> str:
        """`docker push REF`; returns the manifest digest docker printed."""
        out = self.run("push", ref).stdout
        m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", out)
        if not m:
            raise AssertionError(f"no digest in docker push output:\n{out}")
        return m.group(1)

    def pull(self, ref: str) -> str:
        """`docker pull REF`; returns the manifest digest docker printed."""
        out = self.run("pull", ref).stdout
        m = re.search(r"Digest: (sha256:[0-9a-f]{64})", out)
        if not m:
            raise AssertionError(f"no digest in docker pull output:\n{out}")
        return m.group(1)

    def import_tar(self, tar: Path | str, ref: str) -> str:
        """`docker import TAR REF` (an image from a rootfs tarball, no container); returns the image ID."""
        return self.run("import", str(tar), ref).stdout.strip()

    def load(self, archive: Path | str) -> str:
        """`docker load -i ARCHIVE`; returns docker's output."""
        return self.run("load", "-i", str(archive)).stdout

    def image_id(self, ref: str) -> str:
        """The local image ID (config digest)."""
        return self.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def repo_digests(self, ref: str) -> list[str]:
        """`RepoDigests` of a local image ("repo@sha256:...")."""
        return list(json.loads(self.run("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout))

    def rmi(self, *refs: str) -> None:
        """Remove local images (ignores ones that do not exist)."""
        self.run("rmi", "--force", *refs, check=False)


@dataclass
class DockerDaemon:
    """A private dockerd (vfs storage, own data/exec root and unix socket) started as environment.md says.

    dockerd starts its own containerd (in a process group of its own, pid in
    exec/containerd/containerd.pid); `stop()` ends both and undoes dockerd's bind mount of the
    data root. dockerd runs with GODEBUG=netdns=cgo: Go's own resolver caches /etc/hosts for 5 s,
    so a name added by `hosts_entry` would be missed ("no such host") for up to 5 s; glibc's
    resolver reads the file on every lookup.
    `run()` uses a DOCKER_CONFIG under the daemon's root; use `client(dir)` for per-test logins.
    """

    root: Path
    process: ManagedProcess
    insecure_registries: tuple[str, ...] = ()

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @classmethod
    def start(cls, root: Path, *, insecure_registries: Sequence[str] = INSECURE_REGISTRIES, timeout: float = 60) -> DockerDaemon:
        """Start dockerd under `root` and wait until `docker version` reaches it."""
        require_binary(DOCKERD)
        require_binary(DOCKER)
        root.mkdir(parents=True, exist_ok=True)
        (root / "daemon.json").write_text("{}")  # never read the machine's /etc/docker/daemon.json
        argv = [
            DOCKERD,
            "--config-file",
            str(root / "daemon.json"),
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver=vfs",
            f"--data-root={root}/data",
            f"--exec-root={root}/exec",
            f"--pidfile={root}/dockerd.pid",
            "-H",
            f"unix://{root}/docker.sock",
            "--log-level=warn",
            *(f"--insecure-registry={r}" for r in insecure_registries),
        ]
        process = ManagedProcess.start("dockerd", argv, root / "dockerd.log", env={"GODEBUG": "netdns=cgo"})
        self = cls(root, process, tuple(insecure_registries))
        client = self.client(root / "docker-config")

        def answers() -> bool:
            return self.socket.exists() and client.run("version", check=False, timeout=10).returncode == 0

        try:
            wait_until(answers, "dockerd", timeout, process)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, config_dir: Path) -> DockerClient:
        """A CLI view of this daemon with its own DOCKER_CONFIG (so logins do not leak between tests)."""
        return DockerClient(self, config_dir)

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/docker ARGS with DOCKER_HOST set and the daemon's private DOCKER_CONFIG."""
        return self.client(self.root / "docker-config").run(*args, input=input, check=check, timeout=timeout)

    def stop(self) -> None:
        """Stop dockerd (and its containerd), unmount what it left mounted and delete its directories."""
        containerd_pid = _read_pid(self.root / "exec" / "containerd" / "containerd.pid")
        self.process.stop(timeout=30)
        if containerd_pid and str(self.root) in _cmdline(containerd_pid):  # dockerd was killed before stopping it
            _terminate_pid(containerd_pid)
        for mount_point in _mounts_under(self.root):
            subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _terminate_pid(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    prefix = str(root.resolve())
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1]
    return sorted({p for p in points if p == prefix or p.startswith(prefix + "/")}, key=len, reverse=True)


def digests_in(text: str) -> list[str]:
    """Every sha256 digest mentioned in `text`, in order."""
    return _DIGEST_RE.findall(text)
