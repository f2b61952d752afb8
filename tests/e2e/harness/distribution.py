"""CNCF Distribution 2.8 (`/usr/bin/docker-registry`), the reference registry Wharf is measured against."""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.e2e.harness.process import DISTRIBUTION, ManagedProcess, Unavailable, free_port, require_binary, wait_until
from tests.e2e.harness.s3 import S3Target

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file (Distribution accepts bcrypt only): `bcrypt` if installed, else libc crypt."""
    try:
        import bcrypt  # type: ignore[import-not-found,unused-ignore]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode())
    except ImportError:
        pass
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # removed in Python 3.13
        except ImportError as e:
            raise Unavailable("no bcrypt implementation for htpasswd (pip install bcrypt)") from e
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))
    if not hashed or not hashed.startswith("$2"):
        raise Unavailable("libc crypt has no bcrypt; pip install bcrypt")
    return hashed


@dataclass
class DistributionRegistry:
    """A running CNCF Distribution registry on 127.0.0.1 (plain HTTP)."""

    root: Path
    port: int
    process: ManagedProcess
    storage: Literal["filesystem", "s3"]
    redirect: bool
    users: dict[str, str] = field(default_factory=dict)
    s3_prefix: str = ""

    @property
    def host(self) -> str:
        """ "127.0.0.1:PORT" (what goes into image references)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> tuple[str, str]:
        """(user, password) of the first htpasswd user; ValueError without auth."""
        if not self.users:
            raise ValueError("this registry runs without auth")
        return next(iter(self.users.items()))

    @property
    def creds_arg(self) -> str:
        """ "user:password" (skopeo --creds, ctr --user)."""
        return ":".join(self.creds)

    def stop(self) -> None:
        """Stop the registry and delete its directory (S3 objects under its prefix are left to the bucket's owner)."""
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_distribution(
    root: Path,
    *,
    storage: Literal["filesystem", "s3"] = "filesystem",
    s3: S3Target | None = None,
    redirect: bool = False,
    users: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30,
) -> DistributionRegistry:
    """Start /usr/bin/docker-registry (Distribution 2.8) on 127.0.0.1 with a generated config.

    storage="filesystem" keeps blobs under `root`; storage="s3" uses the S3 driver against `s3`
    (default: `S3Target.from_env()`), path-style, under a fresh root directory in the bucket.
    `redirect` is the driver's blob-GET redirect (`storage.redirect.disable: not redirect`):
    clients then fetch blobs from presigned S3 URLs. `users` turns on htpasswd basic auth.
    Upload purging is off (no background listings). The config is JSON, which is YAML too.
    """
    require_binary(DISTRIBUTION)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    s3_prefix = ""
    storage_cfg: dict[str, object] = {
        "delete": {"enabled": True},
        "redirect": {"disable": not redirect},
        "maintenance": {"uploadpurging": {"enabled": False}},
        "cache": {"blobdescriptor": "inmemory"},
    }
    if storage == "filesystem":
        storage_cfg["filesystem"] = {"rootdirectory": str(root / "data")}
    else:
        s3 = s3 or S3Target.from_env()
        s3_prefix = f"/distribution-{secrets.token_hex(4)}"
        storage_cfg["s3"] = {
            "accesskey": s3.access_key,
            "secretkey": s3.secret_key,
            "region": s3.region,
            "regionendpoint": s3.endpoint_url,  # a custom endpoint also turns on path-style addressing
            "bucket": s3.bucket,
            "rootdirectory": s3_prefix,
            "secure": s3.endpoint_url.startswith("https"),
            "v4auth": True,
            "encrypt": False,
        }
    config: dict[str, object] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": storage_cfg,
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if users:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
        config["auth"] = {"htpasswd": {"realm": "wharf-e2e", "path": str(htpasswd)}}
    config_path = root / "config.yml"
    config_path.write_text(json.dumps(config, indent=1))
    # No AWS_* variables: the config says everything, and the AWS SDK in Distribution 2.8 panics
    # on AWS_CA_BUNDLE ("unable to load custom CA bundle, HTTPClient's transport unsupported type").
    process = ManagedProcess.start(
        "docker-registry", [DISTRIBUTION, "serve", str(config_path)], root / "registry.log", drop_env_prefixes=("AWS_",)
    )
    registry = DistributionRegistry(root, port, process, storage, redirect, dict(users or {}), s3_prefix)

    def answers() -> bool:
        try:
            _NO_PROXY_OPENER.open(f"{registry.url}/v2/", timeout=1)
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False
        return True

    try:
        wait_until(answers, "docker-registry", timeout, process)
    except BaseException:
        registry.stop()
        raise
    return registry
