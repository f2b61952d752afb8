"""Token settings: production refuses to start without a key directory and never generates keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import manage

ROOT = Path(__file__).resolve().parents[2]
# Everything else production requires, so that only what a test leaves out is missing.
PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 40,
    "AWS_ACCESS_KEY_ID": "a",
    "AWS_SECRET_ACCESS_KEY": "b",
    "GATEWAY_ENCRYPTION_KEY": "e" * 40,
}


def _import_settings(module: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_"))}
    full.update(env, GATEWAY_VAR_DIR=str(ROOT / "var" / "nonexistent"))
    code = f"import {module} as s; print(s.GATEWAY_TOKEN_KEYS_DIR, s.GATEWAY_TOKEN_KEYS_AUTOCREATE, s.GATEWAY_TOKEN_TTL_SECONDS)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True)


def test_production_refuses_to_start_without_a_token_keys_dir():
    r = _import_settings("gateway.settings.production", **PRODUCTION)
    assert r.returncode != 0
    assert "GATEWAY_TOKEN_KEYS_DIR must be set" in r.stderr


def test_production_takes_the_directory_and_never_autocreates(tmp_path):
    r = _import_settings("gateway.settings.production", **PRODUCTION, GATEWAY_TOKEN_KEYS_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path), "False", "300"]


def test_local_and_test_default_to_var_token_keys_and_autocreate():
    for module in ("gateway.settings.local", "gateway.settings.test"):
        r = _import_settings(module)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(ROOT / "var" / "nonexistent" / "token-keys"), "True", "300"]


def test_relative_directories_are_taken_from_the_checkout():
    r = _import_settings("gateway.settings.test", GATEWAY_TOKEN_KEYS_DIR="deploy/keys")
    assert r.stdout.split()[0] == str(ROOT / "deploy" / "keys")


def test_the_token_lifetime_is_bounded():
    for value in ("59", "3601"):
        r = _import_settings("gateway.settings.test", GATEWAY_TOKEN_TTL_SECONDS=value)
        assert r.returncode != 0 and "GATEWAY_TOKEN_TTL_SECONDS must be between 60 and 3600" in r.stderr


def test_production_with_an_empty_directory_says_what_to_do(tmp_path, db):
    env = {"DJANGO_SETTINGS_MODULE": "gateway.settings.production", **PRODUCTION, "GATEWAY_TOKEN_KEYS_DIR": str(tmp_path)}
    r = manage("token_key_list", **env)
    assert r.returncode != 0
    assert "GATEWAY_TOKEN_KEYS_DIR" in r.stderr and "holds no signing key" in r.stderr and "token_key_create" in r.stderr
    assert not list(tmp_path.iterdir())
    r = manage("token_key_create", **env)
    assert r.returncode == 0, r.stderr
    r = manage("token_key_list", **env)
    assert r.returncode == 0, r.stderr
    (key,) = json.loads(r.stdout)
    assert key["signing"] is True and Path(key["file"]).parent == tmp_path
