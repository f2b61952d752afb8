"""Registry clients without a daemon: skopeo, and oras (artifacts) with a plain-HTTP manifest reader."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.e2e.harness.images import MANIFEST_ACCEPT, MT_OCI_MANIFEST, sha256_digest
from tests.e2e.harness.process import SKOPEO, Unavailable, require_binary, run_command

if TYPE_CHECKING:
    import oras.client
    import oras.oci


# --- skopeo -----------------------------------------------------------------------------------------


def skopeo(
    *args: str, timeout: float = 600, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run skopeo (with --insecure-policy: no signature policy file needed) and return the completed process.

    Known-good copy to a plain-HTTP registry, byte-for-byte:
        skopeo copy --preserve-digests --dest-tls-verify=false [--dest-creds u:p] oci:DIR:tag docker://127.0.0.1:PORT/acme/app:tag
    and back: skopeo copy --preserve-digests --src-tls-verify=false docker://... oci:DIR2:tag
    """
    require_binary(SKOPEO)
    return run_command([SKOPEO, "--insecure-policy", *args], timeout=timeout, check=check, env=env)


def skopeo_inspect_digest(ref: str, *, creds: str | None = None) -> str:
    """The manifest digest of `docker://...` ref as the registry serves it (plain HTTP allowed)."""
    args = ["inspect", "--raw", "--tls-verify=false", *(["--creds", creds] if creds else []), ref]
    return sha256_digest(skopeo(*args).stdout.encode())


# --- oras ------------------------------------------------------------------------------------------------


def oras_client(host: str, user: str | None = None, secret: str | None = None) -> oras.client.OrasClient:
    """An `oras.client.OrasClient` for a plain-HTTP registry at `host` ("127.0.0.1:PORT"), basic auth if given.

    The client's requests session ignores proxy variables. Note: oras-py retries a request that
    fails with HTTP 500 or a connection error up to 5 times, sleeping 3 s, 5 s, 11 s, 29 s, 83 s.
    """
    try:
        import oras.client
    except ImportError as e:  # pragma: no cover - installed with the test extras
        raise Unavailable("the oras package is not installed (pip install -e '.[test]')") from e
    if user is not None:
        client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
        client.auth.set_basic_auth(user, secret or "")
    else:
        client = oras.client.OrasClient(hostname=host, insecure=True)
    client.session.trust_env = False
    return client


@dataclass(frozen=True)
class PushedManifest:
    """A manifest as pushed: its digest and size computed from the exact bytes sent."""

    digest: str
    size: int
    media_type: str
    data: bytes

    def subject(self) -> oras.oci.Subject:
        """This manifest as an `oras.oci.Subject` (the referrer's `subject` field)."""
        import oras.oci

        return oras.oci.Subject(mediaType=self.media_type, digest=self.digest, size=self.size)


def oras_push_artifact(
    client: oras.client.OrasClient,
    target: str,
    files: Sequence[Path | str],
    *,
    artifact_type: str = "application/vnd.wharf.test.artifact",
    file_media_type: str = "application/vnd.wharf.test.file",
    subject: oras.oci.Subject | PushedManifest | None = None,
    annotations: Mapping[str, str] | None = None,
) -> PushedManifest:
    """Push `files` as an OCI artifact to `target` ("host/repo:tag"), optionally with an OCI 1.1 `subject`.

    oras-py (0.2.x) supports `subject=` natively (it writes `manifest["subject"]`), so no raw-HTTP
    fallback is needed. Do not use `oras.oci.Subject.from_manifest`: it digests re-serialized JSON,
    not the registry's bytes; use `PushedManifest.subject()` or `manifest_descriptor()` instead.
    The artifact type is carried as the config media type (oras-py writes no `artifactType`
    field; OCI 1.1 registries derive the type from config.mediaType then).
    """
    if isinstance(subject, PushedManifest):
        subject = subject.subject()
    with tempfile.TemporaryDirectory(prefix="wharf-oras-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text("{}")
        response = client.push(
            target=target,
            files=[f"{Path(f).resolve()}:{file_media_type}" for f in files],
            manifest_config=f"{config}:{artifact_type}",
            manifest_annotations=dict(annotations or {}),
            subject=subject,  # type: ignore[arg-type,unused-ignore]  # typed `str` in oras-py, used as Subject
            disable_path_validation=True,
            quiet=True,
        )
    body = response.request.body
    data = body.encode() if isinstance(body, str) else bytes(body or b"")
    digest = sha256_digest(data)
    served = response.headers.get("Docker-Content-Digest")
    if served and served != digest:
        raise AssertionError(f"registry says {served} for a manifest whose bytes digest to {digest}")
    return PushedManifest(digest, len(data), MT_OCI_MANIFEST, data)


def oras_pull_artifact(client: oras.client.OrasClient, target: str, outdir: Path | str) -> list[Path]:
    """Pull an artifact's files into `outdir`; returns their paths."""
    return [Path(p) for p in client.pull(target=target, outdir=str(outdir))]


def manifest_descriptor(host: str, repo: str, reference: str, *, auth: tuple[str, str] | None = None) -> PushedManifest:
    """GET a manifest over plain HTTP and describe it by its exact bytes (to build a `subject`)."""
    import requests

    with requests.Session() as session:
        session.trust_env = False
        url = f"http://{host}/v2/{repo}/manifests/{reference}"
        r = session.get(url, headers={"Accept": MANIFEST_ACCEPT}, auth=auth, timeout=30)
    r.raise_for_status()
    media_type = r.headers.get("Content-Type", "").split(";")[0].strip() or json.loads(r.content).get(
        "mediaType", MT_OCI_MANIFEST
    )
    return PushedManifest(sha256_digest(r.content), len(r.content), media_type, r.content)
