"""Storj's price table from the environment (gateway/settings/storj_prices.py): defaults, overrides, bad values refused."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.conf import app_settings
from gateway.settings.storj_prices import prices_from_env

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = (
    "GATEWAY_STORJ_PRICING",
    "GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH",
    "GATEWAY_STORJ_PRICE_EGRESS_TB",
    "GATEWAY_STORJ_PRICE_SEGMENT_MONTH",
    "GATEWAY_STORJ_MIN_OBJECT_BYTES",
    "GATEWAY_STORJ_MIN_DURATION_DAYS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_2026_prices_and_legacy_switches_every_figure(monkeypatch):
    assert prices_from_env() == {
        "model": "2026",
        "storage_tb_month": "7",
        "egress_tb": "7",
        "segment_month": "0",
        "min_object_bytes": 50_000,
        "min_duration_days": 30,
        "segment_bytes": 64 * 1024 * 1024,
    }
    monkeypatch.setenv("GATEWAY_STORJ_PRICING", "Legacy")
    legacy = prices_from_env()
    assert (legacy["model"], legacy["storage_tb_month"], legacy["segment_month"]) == ("legacy", "4", "0.0000088")
    assert (legacy["min_object_bytes"], legacy["min_duration_days"]) == (0, 0)


def test_every_figure_is_overridable_and_read_as_an_exact_decimal(monkeypatch, settings):
    monkeypatch.setenv("GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH", " 10 ")
    monkeypatch.setenv("GATEWAY_STORJ_PRICE_EGRESS_TB", "6.5")
    monkeypatch.setenv("GATEWAY_STORJ_PRICE_SEGMENT_MONTH", "0.0000088")
    monkeypatch.setenv("GATEWAY_STORJ_MIN_OBJECT_BYTES", "4096")
    monkeypatch.setenv("GATEWAY_STORJ_MIN_DURATION_DAYS", "90")
    settings.GATEWAY_STORJ_PRICES = prices_from_env()
    prices = app_settings.storj_prices
    assert (prices.storage_tb_month, prices.egress_tb, prices.segment_month) == (
        Decimal("10"),
        Decimal("6.5"),
        Decimal("0.0000088"),
    )
    assert (prices.min_object_bytes, prices.min_duration_days) == (4096, 90)


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("GATEWAY_STORJ_PRICING", "tiered", "GATEWAY_STORJ_PRICING must be one of 2026, legacy"),
        ("GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH", "seven", "must be a price in US dollars"),
        ("GATEWAY_STORJ_PRICE_STORAGE_TB_MONTH", "-1", "must be a price from 0 to"),
        ("GATEWAY_STORJ_PRICE_EGRESS_TB", "NaN", "must be a price from 0 to"),
        ("GATEWAY_STORJ_PRICE_EGRESS_TB", "Infinity", "must be a price from 0 to"),
        ("GATEWAY_STORJ_PRICE_SEGMENT_MONTH", "1e9", "must be a price from 0 to"),
        ("GATEWAY_STORJ_PRICE_SEGMENT_MONTH", "$0.01", "must be a price in US dollars"),
        ("GATEWAY_STORJ_MIN_OBJECT_BYTES", "50kB", "GATEWAY_STORJ_MIN_OBJECT_BYTES must be an integer"),
        ("GATEWAY_STORJ_MIN_OBJECT_BYTES", "-5", "GATEWAY_STORJ_MIN_OBJECT_BYTES must be between 0 and"),
        ("GATEWAY_STORJ_MIN_DURATION_DAYS", "400", "GATEWAY_STORJ_MIN_DURATION_DAYS must be between 0 and 365"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        prices_from_env()


def test_a_bad_price_stops_the_settings_from_loading():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "x" * 40, "GATEWAY_STORJ_PRICE_EGRESS_TB": "cheap"}
    env["GATEWAY_VAR_DIR"] = str(ROOT / "var" / "nonexistent")
    env["DATABASE_URL"], env["REDIS_URL"] = "postgres://postgres@127.0.0.1:5432/test", "redis://127.0.0.1:6379/5"
    r = subprocess.run(
        [sys.executable, "-c", "import gateway.settings.base as s; print(s.GATEWAY_STORJ_PRICES)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "GATEWAY_STORJ_PRICE_EGRESS_TB must be a price in US dollars" in r.stderr
    env["GATEWAY_STORJ_PRICE_EGRESS_TB"] = "8"
    r = subprocess.run(
        [sys.executable, "-c", "import gateway.settings.base as s; print(s.GATEWAY_STORJ_PRICES['egress_tb'])"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (r.returncode, r.stdout.strip()) == (0, "8"), r.stderr
