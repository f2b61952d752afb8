"""Fixtures for the accounts tests: a private token key directory, tenants, robots, Redis key cleanup."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from accounts import token_keys


@pytest.fixture
def keys_dir(settings, tmp_path) -> Path:
    """A fresh token key directory for this test only (keys are generated on first use, as in local/test)."""
    directory = tmp_path / "token-keys"
    settings.GATEWAY_TOKEN_KEYS_DIR = directory
    settings.GATEWAY_TOKEN_KEYS_AUTOCREATE = True
    token_keys._forget_keys()
    yield directory
    token_keys._forget_keys()


@pytest.fixture
def unique() -> str:
    """A name no other test (or concurrent test run) uses."""
    return uuid.uuid4().hex[:12]
