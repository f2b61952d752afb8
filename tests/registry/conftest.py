"""Registry fixtures: OCI sample manifests from tests/fixtures/oci (the shared fixtures are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oci"


def fixture_manifest(name: str, **values: object) -> bytes:
    """A manifest from tests/fixtures/oci with @KEY@ placeholders filled in (exact bytes)."""
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    assert "@" not in text.replace("@sha", ""), f"unfilled placeholder in {name}"
    return text.encode()
