"""A private containerd and its `ctr` client."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness.process import CONTAINERD, CTR, ManagedProcess, require_binary, run_command, wait_until


def ctr(
    *args: str, address: Path | str, namespace: str = "wharf-e2e", timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `ctr -a ADDRESS -n NAMESPACE ARGS...` with the native snapshotter (no overlay mounts needed)."""
    require_binary(CTR)
    return run_command(
        [CTR, "-a", str(address), "-n", namespace, *args], timeout=timeout, check=check, env={"CONTAINERD_SNAPSHOTTER": "native"}
    )


@dataclass
class Containerd:
    """A private containerd (own root, state and socket; no systemd, no CRI) and `ctr` against it.

    Working sequence (containerd/ctr 1.6), verified against Distribution 2.8 (`ctr -a SOCK -n NS`
    prefix and CONTAINERD_SNAPSHOTTER=native added by `ctr()`):
        write_oci_archive(layout, "img.tar", image_name="127.0.0.1:PORT/acme/app")
        ctr images import --no-unpack img.tar          # named by io.containerd.image.name
        ctr images push --plain-http [--user u:p] 127.0.0.1:PORT/acme/app:v1
        ctr images rm --sync 127.0.0.1:PORT/acme/app:v1
        ctr images pull --plain-http [--user u:p] 127.0.0.1:PORT/acme/app:v1
        ctr images ls                                  # DIGEST column: the manifest digest
    Push uploads each missing blob as HEAD blob -> POST uploads/ -> PUT ?digest= (monolithic, no
    PATCH), then HEAD + PUT manifest. `images rm --sync` waits for garbage collection, so the
    blobs really leave the content store and the next pull downloads them (without --sync, or
    while another image shares them, pull fetches only what is missing). Without
    io.containerd.image.name, import names an OCI archive "import-<date>" unless --base-name is
    given. To push under another name: `ctr images tag SRC DST`, or `ctr images push DST SRC`.
    `pull` unpacks into the native snapshotter (a file copy; no overlay mount needed).
    """

    root: Path
    process: ManagedProcess
    namespace: str = "wharf-e2e"

    @property
    def socket(self) -> Path:
        return self.root / "containerd.sock"

    @classmethod
    def start(cls, root: Path, *, timeout: float = 30) -> Containerd:
        """Start containerd with a generated config under `root` and wait until `ctr version` answers."""
        require_binary(CONTAINERD)
        require_binary(CTR)
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{root}/root"\n'
            f'state = "{root}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
            '"io.containerd.snapshotter.v1.devmapper"]\n'
            f'[grpc]\n  address = "{root}/containerd.sock"\n'
            f'[ttrpc]\n  address = "{root}/containerd.sock.ttrpc"\n'
            '[debug]\n  address = ""\n  level = "warn"\n'
            '[metrics]\n  address = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root}/opt"\n'
        )
        process = ManagedProcess.start("containerd", [CONTAINERD, "--config", str(config)], root / "containerd.log")
        self = cls(root, process)

        def answers() -> bool:
            return self.socket.exists() and self.ctr("version", check=False, timeout=10).returncode == 0

        try:
            wait_until(answers, "containerd", timeout, process)
        except BaseException:
            self.stop()
            raise
        return self

    def ctr(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` against this containerd, in its namespace."""
        return ctr(*args, address=self.socket, namespace=self.namespace, timeout=timeout, check=check)

    def image_digest(self, ref: str) -> str:
        """The manifest digest containerd records for a local image name."""
        out = self.ctr("images", "ls", "--quiet").stdout.split()
        if ref not in out:
            raise KeyError(ref)
        for line in self.ctr("images", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == ref:
                return next(p for p in parts if p.startswith("sha256:"))
        raise KeyError(ref)

    def stop(self) -> None:
        """Stop containerd and delete its directories."""
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)
