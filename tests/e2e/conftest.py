"""Fixtures for end-to-end tests: private daemons, client helpers and a reference registry (see harness/).

Policy for what this machine lacks (a binary, a daemon that will not start): the test is
skipped with the reason, unless the environment variable CI is "true", where it fails.
Everything under tests/e2e/ is marked `e2e`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

from tests.e2e import harness
from tests.e2e.harness import (
    Containerd,
    DistributionRegistry,
    DockerClient,
    DockerDaemon,
    S3Target,
    Unavailable,
)
from tests.e2e.wharf import WharfServer  # noqa: F401

if TYPE_CHECKING:
    from oras.client import OrasClient

T = TypeVar("T")

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from tests/e2e/ with `e2e`."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def in_ci() -> bool:
    """Whether missing tools must fail the run (CI=true) rather than skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail loudly with it when CI=true."""
    if in_ci():
        pytest.fail(f"e2e prerequisite missing (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


def needs(fn: Callable[[], T]) -> T:
    """Call `fn`; turn `harness.Unavailable` into the skip/fail policy."""
    try:
        return fn()
    except Unavailable as e:
        unavailable(str(e))


def _short_tempdir(prefix: str) -> Path:
    # Short paths: unix socket paths must stay under 108 bytes; and outside pytest's
    # basetemp so vfs image data is deleted when the session ends, not kept for 3 runs.
    return Path(tempfile.mkdtemp(prefix=prefix))


# --- daemons ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_daemon(request: pytest.FixtureRequest) -> Iterator[DockerDaemon]:
    """A private dockerd for the session (vfs, own root and socket), stopped at the end.

    `--insecure-registry` values: harness.INSECURE_REGISTRIES, or indirect parametrization
    (`@pytest.mark.parametrize("docker_daemon", [("reg.example:5000",)], indirect=True)`).
    Host names resolving to 127.0.0.1 (see `host_alias`) need none.
    """
    insecure: tuple[str, ...] = tuple(getattr(request, "param", harness.INSECURE_REGISTRIES))
    daemon = needs(lambda: DockerDaemon.start(_short_tempdir("wharf-dockerd-"), insecure_registries=insecure))
    yield daemon
    daemon.stop()


@pytest.fixture
def docker(docker_daemon: DockerDaemon, tmp_path: Path) -> DockerClient:
    """The docker CLI against the session daemon with this test's own DOCKER_CONFIG (logins do not leak)."""
    return docker_daemon.client(tmp_path / "docker-config")


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """A private containerd for the session (own root, state and socket), stopped at the end."""
    daemon = needs(lambda: Containerd.start(_short_tempdir("wharf-ctrd-")))
    yield daemon
    daemon.stop()


@pytest.fixture
def ctr(containerd: Containerd) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`ctr(*args)` against the session containerd (see `harness.Containerd` for a working push/pull sequence)."""
    return containerd.ctr


@pytest.fixture(scope="session")
def skopeo() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`skopeo(*args)` (harness.skopeo) once the binary is known to exist."""
    needs(lambda: harness.require_binary(harness.SKOPEO))
    return harness.skopeo


@pytest.fixture(scope="session")
def make_oras_client() -> Callable[..., OrasClient]:
    """`harness.oras_client(host, user=None, secret=None)` once the oras package is known to import."""
    try:
        import oras.client  # noqa: F401
    except ImportError:
        unavailable("the oras package is not installed (pip install -e '.[test]')")
    return harness.oras_client


# --- /etc/hosts -----------------------------------------------------------------------------------------


@pytest.fixture
def host_alias() -> Iterator[Callable[[str], str]]:
    """`host_alias("acme.wharf.test")` makes the name resolve to 127.0.0.1 until the test ends; returns it."""
    with contextlib.ExitStack() as stack:

        def add(name: str) -> str:
            return needs(lambda: stack.enter_context(harness.hosts_entry(name)))

        yield add


# --- CNCF Distribution ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def start_distribution_registry() -> Iterator[Callable[..., DistributionRegistry]]:
    """Factory: `start_distribution_registry(**kwargs)` -> a running registry (see harness.start_distribution).

    Every registry it starts is stopped at the end of the session.
    """
    started: list[DistributionRegistry] = []

    def start(**kwargs: object) -> DistributionRegistry:
        registry = needs(lambda: harness.start_distribution(_short_tempdir("wharf-distribution-"), **kwargs))  # type: ignore[arg-type]
        started.append(registry)
        return registry

    yield start
    for registry in reversed(started):
        registry.stop()


@pytest.fixture(scope="session")
def distribution_registry(start_distribution_registry: Callable[..., DistributionRegistry]) -> DistributionRegistry:
    """Distribution 2.8 with filesystem storage and no auth, shared by the session (use distinct repositories)."""
    return start_distribution_registry()


DISTRIBUTION_USERS = {"alice": "alice-secret-password"}


@pytest.fixture(scope="session")
def distribution_registry_auth(start_distribution_registry: Callable[..., DistributionRegistry]) -> DistributionRegistry:
    """Distribution 2.8 with filesystem storage and htpasswd basic auth (`.creds` = ("alice", ...))."""
    return start_distribution_registry(users=DISTRIBUTION_USERS)


@pytest.fixture(scope="session", params=[False, True], ids=["s3-proxied", "s3-redirect"])
def distribution_registry_s3(
    request: pytest.FixtureRequest, s3_server: object, start_distribution_registry: Callable[..., DistributionRegistry]
) -> DistributionRegistry:
    """Distribution 2.8 on the session's S3 (tests/conftest.py's SeaweedFS), blob GETs proxied or redirected to S3.

    Parametrized: a test using it runs twice, with `storage.redirect.disable` true and false.
    """
    return start_distribution_registry(storage="s3", s3=needs(S3Target.from_env), redirect=request.param)


@pytest.fixture
def oci_dir(tmp_path: Path) -> Path:
    """An empty directory for `harness.build_oci_layout`."""
    path = tmp_path / "oci"
    path.mkdir()
    return path


# --- Wharf itself ---------------------------------------------------------------------------------


# `wharf`, the session's live Wharf, is in tests/conftest.py: the API tests drive the same server.


@pytest.fixture
def wharf_tenant(transactional_db):
    """A fresh tenant (unique slug: the server caches tenants briefly) with an owner and a token."""
    import uuid as _uuid

    from tests.factories import UserFactory, make_tenant, make_token

    slug = "t" + _uuid.uuid4().hex[:10]
    owner = UserFactory(username="u" + slug)
    tenant = make_tenant(slug, owner=owner)
    return tenant, owner.username, make_token(owner)
