"""README's "Your first push and pull", run as written (taken from README.md) with the real docker CLI and daemon."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import uuid

import pytest

from gateway.registry.models import Manifest, Tag
from tests.e2e.harness import DockerClient
from tests.e2e.wharf import WharfServer
from tests.helpers import ROOT, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def first_push_commands() -> list[str]:
    """The command lines of the first ```sh block under "## Your first push and pull" (comments and blanks dropped)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Your first push and pull\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no ```sh block in the README's first-push section"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_first_push_works_as_written(docker: DockerClient, wharf: WharfServer, transactional_db) -> None:
    commands = first_push_commands()
    assert any(c.startswith("docker push ") for c in commands) and any(c.startswith("docker pull ") for c in commands)
    assert not any(re.search(r"docker (tag|push|pull) (alpine|busybox|debian|ubuntu)", c) for c in commands), (
        "the first push must not need an image from a public registry (works offline)"
    )
    # Only what differs on this machine: the server's address, the interpreter, and names unique to this run.
    slug, user = "r" + uuid.uuid4().hex[:9], "u" + uuid.uuid4().hex[:9]
    script = "\n".join(commands)
    script = script.replace("127.0.0.1:8000", wharf.host).replace(".venv/bin/python", shlex.quote(sys.executable))
    script = re.sub(r"\bacme\b", slug, re.sub(r"\balice\b", user, script))

    env = {**subprocess_env(), **docker.env()}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-x", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"README commands failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    pushed = re.search(r"1: digest: (sha256:[0-9a-f]{64}) size: \d+", result.stdout)
    pulled = re.search(r"Digest: (sha256:[0-9a-f]{64})", result.stdout)
    assert pushed and pulled and pushed.group(1) == pulled.group(1), result.stdout
    tag = Tag.objects.get(tenant__slug=slug, repository__name="hello", name="1")
    assert tag.manifest.digest == pushed.group(1) and Manifest.objects.filter(tenant__slug=slug).count() == 1
    ref = f"{wharf.host}/{slug}/hello:1"
    assert docker.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.startswith("sha256:")
    docker.rmi(ref)
