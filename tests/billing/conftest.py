"""Billing fixtures: the seeded plans (a transactional test's flush empties every table, the migration's rows too)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from billing.models import Plan

seed_migration = importlib.import_module("billing.migrations.0003_seed_plans")


@pytest.fixture
def plans(db) -> dict[str, Plan]:
    """Free, Pro and Team as the data migration seeds them (re-seeded if a flush took them)."""
    seed_migration.seed(apps, None)
    return {p.code: p for p in Plan.objects.all()}
