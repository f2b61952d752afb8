"""The S3 bucket the session's SeaweedFS serves, as a storage target for the reference registry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tests.e2e.harness.process import Unavailable


@dataclass(frozen=True)
class S3Target:
    """Where the S3 storage driver writes (the env vars tests/conftest.py exports)."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Target:
        """From AWS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_STORAGE_BUCKET_NAME[, AWS_S3_REGION_NAME]."""
        env = os.environ if env is None else env
        missing = [
            k
            for k in ("AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_STORAGE_BUCKET_NAME")
            if not env.get(k)
        ]
        if missing:
            raise Unavailable(f"S3 for Distribution needs {', '.join(missing)}")
        return cls(
            env["AWS_S3_ENDPOINT_URL"],
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            env["AWS_STORAGE_BUCKET_NAME"],
            env.get("AWS_S3_REGION_NAME") or "us-east-1",
        )
