"""Settings parse the environment strictly and say what is wrong."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.settings import env as E

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setenv(monkeypatch):
    def _set(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, v)

    return _set


@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("ON", True), ("no", False), ("0", False), ("", False)])
def test_boolean_accepts_the_usual_spellings(setenv, value, expected):
    setenv(X_FLAG=value)
    assert E.boolean("X_FLAG", not expected) is expected


def test_boolean_rejects_garbage_with_a_clear_message(setenv):
    setenv(DJANGO_DEBUG="maybe")
    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_DEBUG must be a boolean.*'maybe'"):
        E.boolean("DJANGO_DEBUG", False)


def test_integer_rejects_text_and_out_of_range(setenv):
    setenv(PORT="eighty")
    with pytest.raises(ImproperlyConfigured, match="PORT must be an integer, got 'eighty'"):
        E.integer("PORT", 8000, minimum=1, maximum=65535)
    setenv(PORT="70000")
    with pytest.raises(ImproperlyConfigured, match="PORT must be between 1 and 65535, got 70000"):
        E.integer("PORT", 8000, minimum=1, maximum=65535)


def test_database_url_must_be_postgres(setenv):
    setenv(DATABASE_URL="sqlite:///db.sqlite3")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must be a postgres"):
        E.database("DATABASE_URL", None)
    setenv(DATABASE_URL="postgres://u@h:5432/wharf")
    assert E.database("DATABASE_URL", None)["NAME"] == "wharf"


def test_choice_and_domain(setenv):
    setenv(AWS_S3_ADDRESSING_STYLE="sideways")
    with pytest.raises(ImproperlyConfigured, match="AWS_S3_ADDRESSING_STYLE must be one of path, virtual"):
        E.choice("AWS_S3_ADDRESSING_STYLE", "path", ("path", "virtual"))
    setenv(GATEWAY_REGISTRY_DOMAIN="not a domain")
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_REGISTRY_DOMAIN must be a host name"):
        E.domain("GATEWAY_REGISTRY_DOMAIN", "x")
    setenv(GATEWAY_REGISTRY_DOMAIN="registry.example.com")
    assert E.domain("GATEWAY_REGISTRY_DOMAIN", "x") == "registry.example.com"


def _import_settings(module: str, *, show: str = "s.DEBUG", **env: str) -> subprocess.CompletedProcess:
    """Import the settings `module` as `s` in a child with only `env` set; it prints `show` (an expression of `s`)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_"))}
    full.update(env, GATEWAY_VAR_DIR=str(ROOT / "var" / "nonexistent"))
    return subprocess.run(
        [sys.executable, "-c", f"import {module} as s; print({show})"], cwd=ROOT, env=full, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_secret_key():
    r = _import_settings("gateway.settings.production")
    assert r.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in r.stderr


def test_production_is_not_in_debug_by_default():
    r = _import_settings(
        "gateway.settings.production",
        DJANGO_SECRET_KEY="x" * 40,
        AWS_ACCESS_KEY_ID="a",
        AWS_SECRET_ACCESS_KEY="b",
        GATEWAY_TOKEN_KEYS_DIR="/tmp",
        GATEWAY_ENCRYPTION_KEY="e" * 40,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_a_bad_value_stops_startup_naming_the_variable():
    r = _import_settings("gateway.settings.production", DJANGO_SECRET_KEY="x" * 40, DJANGO_DEBUG="perhaps")
    assert r.returncode != 0
    assert "DJANGO_DEBUG must be a boolean" in r.stderr


def test_the_upload_memory_budget_must_hold_at_least_one_part():
    r = _import_settings(
        "gateway.settings.test",
        GATEWAY_S3_PART_SIZE=str(8 * 1024 * 1024),
        GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES=str(4 * 1024 * 1024),
    )
    assert r.returncode != 0
    assert "GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES must be at least 8388608 (one part, GATEWAY_S3_PART_SIZE), got 4194304" in r.stderr
